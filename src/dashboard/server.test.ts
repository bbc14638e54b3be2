/* The dashboard server in-process, over a small route table: who gets in (token, cookie, CSRF
 * token, origin), what every response carries, the admin routes as root, the app's files, and
 * the event streams with their bounds. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { systemClock } from '../clock.js';
import { Components } from '../component.js';
import { DecisionLog } from '../daemon/decision-log.js';
import { FlowEvents } from '../daemon/flow-events.js';
import type { Flow } from '../daemon/flows.js';
import type { QosError } from '../errors.js';
import { readToken } from './token.js';
import { DashboardServer, isLoopback, MAX_BODY, parseListen } from './server.js';
import { ask, login, SseClient } from './test-client.js';

const FLOW: Flow = {
  pid: 4242, fd: 7, uid: 1000, family: 'inet', type: 'stream', proto: 'tcp', protocol: 6, local: { address: '10.0.0.1', port: 40000 }, remote: { address: '192.0.2.8', port: 443 },
  destinations: 0, decision: null, class: 'none', rule: null, appTos: null, appPriority: null, exe: '/usr/bin/curl', user: 'alice', created: Date.UTC(2026, 0, 1), updated: Date.UTC(2026, 0, 1),
};

interface Bed { base: string; token: string; dash: DashboardServer; flows: FlowEvents; decisions: DecisionLog; calls: { uid: number; body: unknown }[]; log: () => string; dir: string; close(): Promise<void> }

async function bed(o: { host?: string; webRoot?: string; streams?: { maxStreams?: number; bufferBytes?: number; heartbeatMs?: number } } = {}): Promise<Bed> {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-dash-'));
  let logText = '';
  const log = pino({ level: 'debug' }, { write: (s: string) => { logText += s; } });
  const flows = new FlowEvents();
  const decisions = new DecisionLog({ onDropped: () => undefined });
  const calls: { uid: number; body: unknown }[] = [];
  const c = new Components();
  c.add(decisions);
  c.add({ name: 'test', routes: [
    { method: 'GET', path: '/v1/status', handle: (r) => { calls.push({ uid: r.uid, body: r.body }); return { json: { ok: true, q: r.url.searchParams.get('q') } }; } },
    { method: 'POST', path: '/v1/echo', body: true, handle: (r) => { calls.push({ uid: r.uid, body: r.body }); return { json: r.body }; } },
    { method: 'GET', path: '/metrics', handle: () => ({ contentType: 'text/plain', text: 'm 1\n' }) },
  ] });
  const dash = new DashboardServer({ host: o.host ?? '127.0.0.1', port: 0, tokenFile: join(dir, 'dashboard.token'), routes: c, log, clock: systemClock, webRoot: o.webRoot ?? join(dir, 'web'), streams: o.streams,
    sources: { flows: (fn) => flows.subscribe(fn), decisions: (fn) => decisions.follow(fn) } });
  await dash.start();
  return { base: dash.url!, token: readToken(join(dir, 'dashboard.token')), dash, flows, decisions, calls, log: () => logText, dir,
    close: async () => { await dash.stop(); rmSync(dir, { recursive: true, force: true }); } };
}

test('without a session cookie every route and page is 401; pages answer the login page', async () => {
  const b = await bed();
  try {
    for (const [m, p] of [['GET', '/api/v1/status'], ['GET', '/api/events'], ['GET', '/api/session'], ['POST', '/api/logout'], ['POST', '/api/v1/echo'], ['GET', '/api/metrics'], ['GET', '/assets/app.js'], ['GET', '/'], ['GET', '/index.html'], ['GET', '/nothing'], ['DELETE', '/api/v1/rules/1']] as const) {
      const a = await ask(b.base, m, p, { headers: { cookie: 'qosd_session=forged' } });
      assert.equal(a.status, 401, `${m} ${p}`);
      if (p === '/' || p === '/index.html') assert.match(a.body, /<script src="\/login.js"/);
      else assert.equal((JSON.parse(a.body) as { error: { code: string } }).error.code, 'QOS_ERR_UNAUTHENTICATED');
    }
    assert.equal(b.calls.length, 0, 'no route ran');
    const js = await ask(b.base, 'GET', '/login.js');
    assert.equal(js.status, 200, 'the login script is the one file served without a session');
    assert.ok(!js.body.includes(b.token));
  } finally { await b.close(); }
});

test('a wrong token is 401; the right one gives an HttpOnly, SameSite=Strict cookie and a CSRF token every API request needs, reads too; logout ends the session', async () => {
  const b = await bed();
  try {
    for (const body of [JSON.stringify({ token: 'f'.repeat(64) }), JSON.stringify({ token: b.token.slice(1) }), '{}', JSON.stringify({ token: 5 }), '[]']) {
      const a = await ask(b.base, 'POST', '/api/login', { body });
      assert.ok(a.status === 401 || a.status === 400, `${body}: ${a.status}`);
      assert.equal(a.headers['set-cookie'], undefined);
    }
    const s = await login(b.base, b.token);
    assert.match(s.setCookie, /^qosd_session=[\w-]{43}; /);
    const attrs = s.setCookie.split('; ').slice(1);
    assert.ok(attrs.includes('HttpOnly') && attrs.includes('SameSite=Strict') && attrs.includes('Path=/'), s.setCookie);
    assert.ok(!attrs.includes('Secure'), 'plain http: a Secure cookie would never come back');
    assert.equal((await ask(b.base, 'GET', '/api/v1/status', { headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } })).status, 200);
    // reads need the CSRF token too: the cookie alone reaches any port of 127.0.0.1
    for (const p of ['/api/v1/status', '/api/events', '/api/metrics', '/api/session', `/api/v1/status?csrf=${s.csrf}`]) {
      assert.equal((await ask(b.base, 'GET', p, { headers: { cookie: s.cookie } })).status, 403, p);
    }
    assert.equal((await ask(b.base, 'GET', '/api/v1/status', { headers: { cookie: s.cookie, 'x-csrf-token': s.csrf.slice(1) } })).status, 403);
    assert.equal((await ask(b.base, 'POST', '/api/logout', { headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } })).status, 200);
    assert.equal((await ask(b.base, 'GET', '/api/v1/status', { headers: { cookie: s.cookie } })).status, 401);
    assert.ok(!b.log().includes(b.token), 'the token is not in the log');
    assert.equal((b.dash.status().dashboard as { logins_refused: number }).logins_refused, 4);
  } finally { await b.close(); }
});

test('a state-changing request without the session\'s CSRF token is 403; with it the admin route runs, as root', async () => {
  const b = await bed();
  const other = await bed();
  try {
    const s = await login(b.base, b.token);
    const s2 = await login(b.base, b.token);
    for (const h of [{}, { 'x-csrf-token': '' }, { 'x-csrf-token': s2.csrf }, { 'x-csrf-token': s.csrf.slice(1) }] as Record<string, string>[]) {
      const a = await ask(b.base, 'POST', '/api/v1/echo', { headers: { cookie: s.cookie, ...h }, body: '{"a":1}' });
      assert.equal(a.status, 403, JSON.stringify(h));
    }
    assert.equal((await ask(b.base, 'POST', '/api/logout', { headers: { cookie: s.cookie } })).status, 403);
    assert.equal(b.calls.length, 0);
    const a = await ask(b.base, 'POST', '/api/v1/echo', { headers: { cookie: s.cookie, 'x-csrf-token': s.csrf }, body: '{"a":1}' });
    assert.equal(a.status, 200);
    assert.deepEqual(JSON.parse(a.body), { a: 1 });
    assert.deepEqual(b.calls, [{ uid: 0, body: { a: 1 } }]);
    const q = await ask(b.base, 'GET', '/api/v1/status?q=x', { headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } });
    assert.deepEqual(JSON.parse(q.body), { ok: true, q: 'x' }, 'the query reaches the route');
    const m = await ask(b.base, 'GET', '/api/metrics', { headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } });
    assert.equal(m.body, 'm 1\n');
    assert.equal((await ask(b.base, 'GET', '/api/v1/none', { headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } })).status, 404);
    // another daemon's session is not this one's
    const o = await login(other.base, other.token);
    assert.equal((await ask(b.base, 'GET', '/api/v1/status', { headers: { cookie: o.cookie, 'x-csrf-token': o.csrf } })).status, 401);
  } finally { await b.close(); await other.close(); }
});

test('a request another origin made is 403, login included; the same origin passes', async () => {
  const b = await bed();
  try {
    const s = await login(b.base, b.token);
    const host = new URL(b.base).host;
    const h = { cookie: s.cookie, 'x-csrf-token': s.csrf };
    for (const extra of [{ origin: 'http://evil.example' }, { origin: `https://${host}` }, { origin: 'null' }, { 'sec-fetch-site': 'cross-site' }, { 'sec-fetch-site': 'same-site' }, { host: `evil.example:${new URL(b.base).port}` }] as Record<string, string>[]) {
      assert.equal((await ask(b.base, 'POST', '/api/v1/echo', { headers: { ...h, ...extra }, body: '{}' })).status, 403, JSON.stringify(extra));
      assert.equal((await ask(b.base, 'GET', '/api/v1/status', { headers: { ...h, ...extra } })).status, 403, JSON.stringify(extra));
      assert.equal((await ask(b.base, 'POST', '/api/login', { headers: extra, body: JSON.stringify({ token: b.token }) })).status, 403, JSON.stringify(extra));
    }
    assert.equal((await ask(b.base, 'POST', '/api/v1/echo', { headers: { ...h, origin: `http://${host}`, 'sec-fetch-site': 'same-origin' }, body: '{}' })).status, 200);
    assert.equal((await ask(b.base, 'GET', '/api/v1/status', { headers: { ...h, host: `localhost:${new URL(b.base).port}` } })).status, 200);
  } finally { await b.close(); }
});

test('every response has the security headers; a body over 1 MiB is 413', async () => {
  const b = await bed();
  try {
    const s = await login(b.base, b.token);
    for (const [m, p, h] of [['GET', '/', {}], ['GET', '/api/v1/status', { cookie: s.cookie }], ['GET', '/api/v1/status', {}], ['POST', '/api/login', {}]] as const) {
      const a = await ask(b.base, m, p, { headers: h });
      assert.match(String(a.headers['content-security-policy']), /default-src 'self'.*frame-ancestors 'none'/, `${m} ${p}`);
      assert.doesNotMatch(String(a.headers['content-security-policy']), /unsafe|\*/);
      assert.equal(a.headers['x-content-type-options'], 'nosniff');
      assert.equal(a.headers['referrer-policy'], 'no-referrer');
    }
    const big = JSON.stringify({ x: 'a'.repeat(MAX_BODY) });
    assert.equal((await ask(b.base, 'POST', '/api/v1/echo', { headers: { cookie: s.cookie, 'x-csrf-token': s.csrf }, body: big })).status, 413);
    assert.equal((await ask(b.base, 'POST', '/api/login', { body: big })).status, 413);
    // without a length (chunked), the bound holds as it is read
    const chunked = await ask(b.base, 'POST', '/api/v1/echo', { headers: { cookie: s.cookie, 'x-csrf-token': s.csrf, 'transfer-encoding': 'chunked', 'content-length': '' }, body: big });
    assert.equal(chunked.status, 413);
    assert.equal(JSON.parse(chunked.body).error.code, 'QOS_ERR_TOO_LARGE');
    assert.ok(!b.calls.some((c) => 'x' in (c.body as object)), 'the route did not run');
  } finally { await b.close(); }
});

test('pages and assets come from the web root behind the session; no path leads out (404)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-web-'));
  const web = join(dir, 'web');
  mkdirSync(join(web, 'assets'), { recursive: true });
  writeFileSync(join(web, 'index.html'), '<!doctype html><title>app</title>');
  writeFileSync(join(web, 'assets/app.js'), 'console.log(1)');
  writeFileSync(join(dir, 'secret'), 'outside');
  const b = await bed({ webRoot: web });
  const unbuilt = await bed();
  try {
    const s = await login(b.base, b.token);
    const h = { cookie: s.cookie };
    const page = await ask(b.base, 'GET', '/', { headers: h });
    assert.equal(page.status, 200);
    assert.equal(page.body, '<!doctype html><title>app</title>');
    const js = await ask(b.base, 'GET', '/assets/app.js', { headers: h });
    assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(js.body, 'console.log(1)');
    assert.equal((await ask(b.base, 'HEAD', '/assets/app.js', { headers: h })).body, '');
    for (const p of ['/assets/../../etc/passwd', '/assets/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd', '/assets/..%2f..%2f..%2f..%2fetc%2fpasswd', '/assets/../../secret', '/assets/%2e%2e/%2e%2e/secret', '/assets/', '/assets/missing.js', '/web/index.html', '/etc/passwd']) {
      const a = await ask(b.base, 'GET', p, { headers: h });
      assert.equal(a.status, 404, p);
      assert.ok(!a.body.includes('root:') && !a.body.includes('outside'), p);
    }
    assert.equal((await ask(b.base, 'POST', '/', { headers: { ...h, 'x-csrf-token': s.csrf } })).status, 404);
    const s2 = await login(unbuilt.base, unbuilt.token);
    const none = await ask(unbuilt.base, 'GET', '/', { headers: { cookie: s2.cookie } });
    assert.equal(none.status, 200);
    assert.match(none.body, /not built/);
  } finally { await b.close(); await unbuilt.close(); rmSync(dir, { recursive: true, force: true }); }
});

test('the event stream follows the hubs only while a reader is connected, and sends their events', async () => {
  const b = await bed();
  try {
    const s = await login(b.base, b.token);
    assert.equal(b.flows.active, false);
    const r = await SseClient.open(b.base, s);
    assert.equal(r.res.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.equal(b.flows.active, true);
    b.flows.publish({ kind: 'open', flow: FLOW });
    b.flows.publish({ kind: 'decided', flow: FLOW, decision: { dscp: 34 }, rule: 'web' });
    b.flows.publish({ kind: 'closed', flow: FLOW, why: 'close' });
    b.decisions.record({ at: Date.UTC(2026, 0, 1), pid: 4242, user: 'alice', exe: '/usr/bin/curl', event: 'connect', fd: 7, family: 'inet', type: 'stream', local: null, remote: { address: '192.0.2.8', port: 443 }, rule: 'web', decision: { dscp: 34 }, class: 'AF41', reply: 'DSCP 34' } as never);
    await r.until((e) => e.event === 'decision', 30_000);
    const kinds = r.events.map((e) => e.event);
    assert.deepEqual(kinds, ['open', 'decided', 'closed', 'decision']);
    const decided = JSON.parse(r.events[1]!.data) as Record<string, unknown>;
    assert.deepEqual(decided, { program: '/usr/bin/curl', pid: 4242, fd: 7, uid: 1000, user: 'alice', family: 'inet', type: 'stream', proto: 'tcp', local: FLOW.local, remote: FLOW.remote, rule: 'web', decision: { dscp: 34 }, class: 'none', created: '2026-01-01T00:00:00.000Z', updated: '2026-01-01T00:00:00.000Z' });
    assert.equal((JSON.parse(r.events[2]!.data) as { why: string }).why, 'close');
    assert.equal((JSON.parse(r.events[3]!.data) as { rule: string }).rule, 'web');
    r.close();
    await waitFor(() => !b.flows.active);
    assert.equal(b.dash.streams.streams, 0);
  } finally { await b.close(); }
});

test('a reader that stops reading loses events past its buffer and is told how many when it reads again; heartbeats keep a quiet stream alive', async () => {
  const b = await bed({ streams: { bufferBytes: 16 * 1024, heartbeatMs: 50 } });
  try {
    const s = await login(b.base, b.token);
    const r = await SseClient.open(b.base, s);
    await r.until((e) => e.event === ':', 30_000);
    r.res.pause();
    // far more than the buffer and the sockets' buffers hold
    for (let i = 0; i < 40_000; i++) b.flows.publish({ kind: 'open', flow: FLOW });
    const dropped = (b.dash.status().dashboard as { events_dropped: number }).events_dropped;
    assert.ok(dropped > 0, 'some were dropped');
    assert.ok(process.memoryUsage().rss < 1 << 30);
    r.res.resume();
    const e = await r.until((x) => x.event === 'dropped', 30_000);
    const n = (JSON.parse(e.data) as { dropped: number }).dropped;
    assert.ok(n > 0 && n <= dropped, `${n} of ${dropped}`);
    // every event was either delivered or reported dropped, and most were dropped: the
    // daemon kept no more than its bounds for this reader
    await waitFor(() => r.events.filter((x) => x.event === 'open').length + r.events.filter((x) => x.event === 'dropped').reduce((a, x) => a + (JSON.parse(x.data) as { dropped: number }).dropped, 0) === 40_000);
    assert.ok(r.events.filter((x) => x.event === 'open').length < 20_000);
    r.close();
  } finally { await b.close(); }
});

test('a reader that keeps reading gets every event of a burst of 2,000 in one turn (the daemon decides in batches)', async () => {
  const b = await bed();
  try {
    const s = await login(b.base, b.token);
    const r = await SseClient.open(b.base, s);
    for (let i = 0; i < 2000; i++) b.flows.publish({ kind: 'open', flow: FLOW });
    await waitFor(() => r.events.filter((e) => e.event === 'open').length === 2000);
    assert.equal((b.dash.status().dashboard as { events_dropped: number }).events_dropped, 0);
    r.close();
  } finally { await b.close(); }
});

test('at most maxStreams streams at once; a closed one frees its place', async () => {
  const b = await bed({ streams: { maxStreams: 2 } });
  try {
    const s = await login(b.base, b.token);
    const a = await SseClient.open(b.base, s);
    const c = await SseClient.open(b.base, s, '/api/v1/decisions?follow=1');
    assert.equal((await ask(b.base, 'GET', '/api/events', { headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } })).status, 503);
    a.close();
    await waitFor(() => b.dash.streams.streams === 1);
    const d = await SseClient.open(b.base, s);
    d.close(); c.close();
  } finally { await b.close(); }
});

test('a dashboard bound beyond loopback works and warns in the log; one on loopback does not warn; a port in use is a clear error', async () => {
  const wide = await bed({ host: '0.0.0.0' });
  const narrow = await bed();
  try {
    assert.match(wide.log(), /"level":40.*listens beyond this machine/);
    assert.doesNotMatch(narrow.log(), /"level":40/);
    const port = new URL(wide.base).port;
    const s = await login(`http://127.0.0.1:${port}/`, wide.token);
    assert.equal((await ask(`http://127.0.0.1:${port}/`, 'GET', '/api/v1/status', { headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } })).status, 200);
    const dir = mkdtempSync(join(tmpdir(), 'qosd-dash-'));
    const again = new DashboardServer({ host: '127.0.0.1', port: Number(new URL(narrow.base).port), tokenFile: join(dir, 'dashboard.token'), routes: new Components(), log: pino({ level: 'silent' }), clock: systemClock,
      sources: { flows: () => () => undefined, decisions: () => () => undefined } });
    await assert.rejects(again.start(), (e: QosError) => e.code === 'QOS_ERR_ENVIRONMENT' && /cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/.test(e.message));
    assert.throws(() => statSync(join(dir, 'dashboard.token')), /ENOENT/, 'no token is left for a dashboard that did not start');
    rmSync(dir, { recursive: true, force: true });
  } finally { await wide.close(); await narrow.close(); }
});

test('--http ADDR:PORT, and which addresses are loopback', () => {
  assert.deepEqual(parseListen('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseListen('[::1]:0'), { host: '::1', port: 0 });
  assert.deepEqual(parseListen('localhost:1'), { host: 'localhost', port: 1 });
  for (const bad of ['8080', '127.0.0.1', '127.0.0.1:65536', '::1:80', '[nothost]:80', ':80', '127.0.0.1:-1']) assert.throws(() => parseListen(bad), /--http takes ADDR:PORT/, bad);
  for (const h of ['127.0.0.1', '127.8.9.1', '::1', '[::1]', 'localhost', 'LOCALHOST']) assert.ok(isLoopback(h), h);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', 'evil.example', '128.0.0.1', '::ffff:8.8.8.8']) assert.ok(!isLoopback(h), h);
});

async function waitFor(cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
