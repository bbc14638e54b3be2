/* The dashboard of a real daemon (`qos daemon --http 127.0.0.1:0`): its token file, `qos
 * dashboard`, the admin API through it, the live events an agent's question causes, and a real
 * browser (headless chromium) logging in with the URL qos dashboard prints. No
 * namespace or nftables table: --kernel off, --tc off. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callJson } from '../daemon/admin-client.js';
import { DaemonChild, QOS_CLI } from '../daemon/child.js';
import { LineClient } from '../daemon/line-client.js';
import { requireChromium, requireRoot, requireTools } from '../prerequisites.js';
import { runSync } from '../exec.js';
import { ask, login, SseClient } from './test-client.js';

const POLICY = `rules:
  - { name: web, match: { event: connect, remote_port: 443 }, action: { dscp: AF41 } }
`;
const ARGS = ['--kernel', 'off', '--tc', 'off', '--nice', 'keep'];

const qos = (...args: string[]) => spawnSync(process.execPath, [QOS_CLI, ...args], { encoding: 'utf8' });

test('a daemon with --http: token file 0600 and not in the log, qos dashboard, the admin API through the dashboard, live events, dropped events for a reader that stops', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-dashboard-'));
  const d = await new DaemonChild(dir, POLICY, [...ARGS, '--http', '127.0.0.1:0']).start();
  try {
    const file = join(dir, 'dashboard.token');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const token = readFileSync(file, 'utf8').trim();
    assert.match(token, /^[0-9a-f]{64}$/);

    const out = qos('dashboard', '--admin', d.admin, '--json');
    assert.equal(out.status, 0, out.stderr);
    const { url, token: printed } = JSON.parse(out.stdout) as { url: string; token: string };
    assert.equal(printed, token);
    assert.match(url, new RegExp(`^http://127\\.0\\.0\\.1:\\d+/#token=${token}$`));
    assert.equal(qos('dashboard', '--admin', d.admin).stdout.trim(), url);
    const base = url.replace(/#.*/, '');

    assert.equal((await ask(base, 'GET', '/api/v1/status')).status, 401);
    assert.equal((await ask(base, 'POST', '/api/login', { body: JSON.stringify({ token: token.replace(/^./, (c) => (c === '0' ? '1' : '0')) }) })).status, 401);
    const s = await login(base, token);
    assert.match(s.setCookie, /HttpOnly/);
    assert.match(s.setCookie, /SameSite=Strict/);
    assert.equal((await ask(base, 'POST', '/api/v1/reload', { headers: { cookie: s.cookie } })).status, 403, 'no CSRF token');
    assert.equal((await ask(base, 'POST', '/api/v1/reload', { headers: { cookie: s.cookie, 'x-csrf-token': s.csrf, origin: 'http://evil.example' } })).status, 403, 'another origin');
    const reload = await ask(base, 'POST', '/api/v1/reload', { headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } });
    assert.equal(reload.status, 200, reload.body);

    // the same status as the admin socket's, but for what moves by itself
    const strip = (x: Record<string, unknown>) => { const { memory: _m, uptime_s: _u, ...rest } = x; return rest; };
    const viaDashboard = JSON.parse((await ask(base, 'GET', '/api/v1/status', { headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } })).body) as Record<string, unknown>;
    const viaSocket = await callJson<Record<string, unknown>>(d.admin, 'GET', '/v1/status');
    assert.deepEqual(strip(viaDashboard), strip(viaSocket));
    assert.equal((viaSocket.dashboard as { url: string }).url, base);

    for (const p of ['/assets/../../etc/passwd', '/assets/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd', '/assets/..%2f..%2f..%2f..%2fetc%2fpasswd', '/../../etc/passwd']) {
      const a = await ask(base, 'GET', p, { headers: { cookie: s.cookie } });
      assert.equal(a.status, 404, p);
      assert.ok(!a.body.includes('root:'), p);
    }

    // an agent asks; the stream has the decision (how soon is `qos bench dashboard`'s
    // sse_lag_ms: a deadline here would fail on a loaded machine, not on a broken stream)
    const events = await SseClient.open(base, s);
    const follow = await SseClient.open(base, s, '/api/v1/decisions?follow=1&limit=0');
    const agent = new LineClient(d.socket);
    agent.sock.write('Connect 1 0 curl 5 {2 192.0.2.8 443} {} {}\n');
    assert.match((await agent.next())!, /^DSCP 34/);
    const decided = await events.until((e) => e.event === 'decided', 30_000);
    const f = JSON.parse(decided.data) as Record<string, unknown>;
    assert.equal(f.pid, process.pid);
    assert.equal(f.rule, 'web');
    assert.deepEqual(f.remote, { address: '192.0.2.8', port: 443 });
    assert.equal(typeof f.program, 'string');
    assert.equal(typeof f.created, 'string');
    const decision = await events.until((e) => e.event === 'decision', 30_000);
    assert.equal((JSON.parse(decision.data) as { rule: string }).rule, 'web');
    // the admin route's own stream, through the dashboard (NDJSON, one decision a line)
    await waitFor(() => follow.raw.includes('"rule":"web"'));
    follow.close();

    // a reader that stops reading: events are dropped for it, and it is told when it reads again
    events.res.pause();
    const lines = Array.from({ length: 30_000 }, (_, i) => `Connect 1 0 curl ${100 + (i % 20_000)} {2 192.0.2.8 443} {} {}\n`).join('');
    agent.sock.write(lines);
    for (let i = 0; i < 30_000; i++) await agent.next();
    const st = await callJson<{ dashboard: { events_dropped: number } }>(d.admin, 'GET', '/v1/status');
    assert.ok(st.dashboard.events_dropped > 0, 'events were dropped');
    events.res.resume();
    const dropped = await events.until((e) => e.event === 'dropped', 30_000);
    assert.ok((JSON.parse(dropped.data) as { dropped: number }).dropped > 0);
    events.close();
    agent.sock.destroy();
    assert.ok(!d.log.includes(token), 'the token is not in the daemon\'s log');
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(!d.log.includes('#token='), 'no URL with the token was logged');
});

test('qos dashboard says so when the daemon has no --http; the token file is gone once the daemon stops', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-dashboard-'));
  const d = await new DaemonChild(dir, POLICY, ARGS).start();
  try {
    const r = qos('dashboard', '--admin', d.admin);
    assert.equal(r.status, 69, r.stderr);
    assert.match(r.stderr, /serves no dashboard: start it with --http/);
  } finally { await d.stop(); }
  const d2 = await new DaemonChild(dir, POLICY, [...ARGS, '--http', '127.0.0.1:0']).start();
  await d2.stop();
  assert.throws(() => statSync(join(dir, 'dashboard.token')), /ENOENT/);
  rmSync(dir, { recursive: true, force: true });
});

test('qos dashboard by an admin-group member who cannot read the root-only token file: an error naming the file and root, exit 77', async () => {
  requireRoot('it runs qos dashboard as another user');
  requireTools('setpriv');
  const dir = mkdtempSync(join(tmpdir(), 'qosd-dashboard-'));
  chmodSync(dir, 0o755); // nobody must reach the admin socket (its own mode lets the group in)
  const d = await new DaemonChild(dir, POLICY, [...ARGS, '--http', '127.0.0.1:0', '--admin-group', '65534']).start();
  try {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, QOS_CLI, 'dashboard', '--admin', d.admin], { encoding: 'utf8' });
    assert.equal(r.status, 77, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot read the dashboard's login token in ${join(dir, 'dashboard.token')}: it is root's only.*run qos dashboard as root`));
    assert.equal(r.stdout, '');
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a real browser opening the URL qos dashboard prints logs in (the token from the fragment, under the CSP) and gets the page', async () => {
  const browser = requireChromium();
  const dir = mkdtempSync(join(tmpdir(), 'qosd-dashboard-'));
  const d = await new DaemonChild(dir, POLICY, [...ARGS, '--http', '127.0.0.1:0']).start();
  try {
    const url = qos('dashboard', '--admin', d.admin).stdout.trim();
    const dom = runSync([browser, '--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage', '--dump-dom', '--virtual-time-budget=5000', url], { timeoutMs: 60_000, pkg: 'chromium' }).stdout;
    assert.doesNotMatch(dom, /<form id="login"/, 'past the login page');
    assert.match(dom, /data-page="flows"/, 'the app, on its first page');
    const st = await callJson<{ dashboard: { sessions: number; logins_refused: number } }>(d.admin, 'GET', '/v1/status');
    assert.equal(st.dashboard.sessions, 1);
    assert.equal(st.dashboard.logins_refused, 0);
    // and without the token, the login page, at 401
    const bare = runSync([browser, '--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage', '--dump-dom', '--virtual-time-budget=3000', url.replace(/#.*/, '')], { timeoutMs: 60_000, pkg: 'chromium' }).stdout;
    assert.match(bare, /<form id="login"/);
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

async function waitFor(cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
