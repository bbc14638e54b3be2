/* POST /v1/characterize[/live] of a real daemon (`qos daemon --http`), on the admin socket and
 * through the dashboard: the answer is what `qos characterize --json` prints for the same file,
 * a file that is not a capture gets the CLI's error as a 400, bodies past the route's bound get
 * 413 (while the dashboard's other routes keep their 1 MiB), a second characterisation while
 * one runs is refused, and the uploaded file is private and gone afterwards. The live route
 * captures a UDP flow this test sends and the daemon's flow table knows. No namespace, no
 * nftables: --kernel off, --tc off. */

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callJson } from '../daemon/admin-client.js';
import { DaemonChild, QOS_CLI } from '../daemon/child.js';
import { ask, login } from '../dashboard/test-client.js';
import { requireRoot, requireTools } from '../prerequisites.js';
import { MAX_CAPTURE } from './api.js';
import { liveUdpFlow, twoFlowCapture } from './test-capture.js';

const dir = mkdtempSync(join(tmpdir(), 'qosd-char-api-'));
// the daemon's temporary files go here (TMPDIR, inherited), so the test can see them come and go
const uploads = join(dir, 'tmp');
mkdirSync(uploads, { mode: 0o700 });
let d: DaemonChild;
let base = '';
let session: { cookie: string; csrf: string };

before(async () => {
  requireRoot('a live capture (tcpdump)');
  requireTools('tcpdump');
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = uploads;
  try {
    d = await new DaemonChild(dir, null, ['--kernel', 'off', '--tc', 'off', '--nice', 'keep', '--http', '127.0.0.1:0']).start();
  } finally {
    if (saved === undefined) delete process.env.TMPDIR; else process.env.TMPDIR = saved;
  }
  const token = readFileSync(join(dir, 'dashboard.token'), 'utf8').trim();
  base = (await callJson<{ dashboard: { url: string } }>(d.admin, 'GET', '/v1/status')).dashboard.url;
  session = await login(base, token);
});
after(async () => {
  await d?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const capture = join(dir, 'two.pcap');
writeFileSync(capture, twoFlowCapture());

/** `qos characterize --json ARGS` run in dir (so a file named by its base name is printed so). */
function cli(...args: string[]): { status: number | null; json: unknown; stderr: string } {
  const r = spawnSync(process.execPath, [QOS_CLI, 'characterize', '--json', ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, json: r.status === 0 ? JSON.parse(r.stdout) : null, stderr: r.stderr };
}

interface Reply { status: number; body: string }

/** A POST of bytes: on the admin socket (socketPath) or the dashboard (base URL, with the
 * session); `body` is sent whole, or a function writes it (chunked) and ends the request. */
function post(to: { socket: string } | { base: string }, path: string, body: Buffer | ((req: import('node:http').ClientRequest) => void), headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const where = 'socket' in to ? { socketPath: to.socket } : { host: new URL(to.base).hostname, port: new URL(to.base).port };
    const h: Record<string, string> = { 'content-type': 'application/octet-stream', ...headers };
    if ('base' in to) Object.assign(h, { cookie: session.cookie, 'x-csrf-token': session.csrf });
    if (Buffer.isBuffer(body)) h['content-length'] = String(body.length);
    const req = request({ ...where, method: 'POST', path: ('base' in to ? '/api' : '') + path, headers: h, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    if (Buffer.isBuffer(body)) req.end(body);
    else body(req);
  });
}

const errorOf = (r: Reply) => (JSON.parse(r.body) as { error: { code: string; message: string } }).error;

/** Polls until f() holds (a generous deadline: the machine is shared). */
async function until(f: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('an uploaded capture is answered with what qos characterize --json prints for it, on the admin socket and through the dashboard', async () => {
  const bytes = readFileSync(capture);
  const a = await post({ socket: d.admin }, '/v1/characterize?name=two.pcap', bytes);
  assert.equal(a.status, 200, a.body);
  const want = cli('two.pcap');
  assert.equal(want.status, 0, want.stderr);
  assert.deepEqual(JSON.parse(a.body), want.json);
  const flows = (want.json as { flows: { key: string; knee: unknown; tspec: unknown; curve: unknown[] }[] }).flows;
  assert.deepEqual(flows.map((f) => f.key), ['udp 10.1.0.1:4000 > 10.1.0.2:5004', 'udp 10.1.0.1:4000 > 10.1.0.2:6000']);

  const b = await post({ base }, '/v1/characterize?name=two.pcap&grid=12&peak_window=20&count=1', bytes);
  assert.equal(b.status, 200, b.body);
  const opts = cli('--grid', '12', '--peak-window', '20', '--count', 'two.pcap');
  assert.deepEqual(JSON.parse(b.body), opts.json);
  assert.equal((JSON.parse(b.body) as { flows: { curve: unknown[] }[] }).flows[0]!.curve.length, 12);

  const c = await post({ base }, '/v1/characterize?name=two.pcap&flow=dport%3D6000&rates=40kB,1MB', bytes);
  assert.deepEqual(JSON.parse(c.body), cli('--flow', 'dport=6000', '--rates', '40kB,1MB', 'two.pcap').json);
  const bad = await post({ base }, '/v1/characterize?grid=zero', bytes);
  assert.equal(bad.status, 400);
  assert.match(errorOf(bad).message, /grid takes a positive whole number/);
});

test('a file that is not a capture, or a cut one: 400 with the error qos characterize gives', async () => {
  const junk = Buffer.from('not a capture at all, just text\n');
  writeFileSync(join(dir, 'junk.pcap'), junk);
  const r = await post({ base }, '/v1/characterize?name=junk.pcap', junk);
  assert.equal(r.status, 400, r.body);
  const e = errorOf(r);
  assert.equal(e.code, 'QOS_ERR_CAPTURE');
  const c = cli('junk.pcap');
  assert.equal(c.status, 65);
  assert.equal(c.stderr.trim(), `qos: ${e.message}`);
  assert.match(e.message, /^junk\.pcap: capture, byte 0: not a pcap or pcapng file/);

  const cut = readFileSync(capture).subarray(0, 1000);
  writeFileSync(join(dir, 'cut.pcap'), cut);
  const r2 = await post({ socket: d.admin }, '/v1/characterize?name=cut.pcap', cut);
  assert.equal(r2.status, 400);
  assert.equal(cli('cut.pcap').stderr.trim(), `qos: ${errorOf(r2).message}`);
  const empty = await post({ socket: d.admin }, '/v1/characterize', Buffer.alloc(0));
  assert.equal(empty.status, 400);
  assert.match(errorOf(empty).message, /^upload: capture, byte 0: empty capture/);
});

test('bounds: a capture over the dashboard\'s 1 MiB is taken, other routes keep that bound; past 64 MiB, 413 by its length or as it streams', async () => {
  const big = twoFlowCapture(25);
  assert.ok(big.length > 3 * 2 ** 20, `${big.length} bytes`);
  const ok = await post({ base }, '/v1/characterize?name=big.pcap', big);
  assert.equal(ok.status, 200, ok.body.slice(0, 300));
  assert.equal((JSON.parse(ok.body) as { flows: { packets: number }[] }).flows[0]!.packets, 2510);
  const reload = await ask(base, 'POST', '/api/v1/reload', { headers: { cookie: session.cookie, 'x-csrf-token': session.csrf }, body: JSON.stringify({ pad: 'x'.repeat(2 ** 21) }) });
  assert.equal(reload.status, 413, 'a JSON route keeps the 1 MiB bound');

  // by its Content-Length: refused before a byte of it is read
  const byLength = await post({ base }, '/v1/characterize', (req) => { req.setHeader('content-length', String(MAX_CAPTURE + 1)); req.flushHeaders(); });
  assert.equal(byLength.status, 413);
  assert.equal(errorOf(byLength).code, 'QOS_ERR_TOO_LARGE');
  // chunked, no length: refused once 64 MiB have come
  for (const to of [{ socket: d.admin }, { base }]) {
    const chunk = Buffer.alloc(1 << 20);
    const streamed = await post(to, '/v1/characterize', (req) => {
      let sent = 0;
      const more = () => {
        while (sent <= MAX_CAPTURE) {
          sent += chunk.length;
          if (!req.write(chunk)) { req.once('drain', more); return; }
        }
        req.end();
      };
      req.on('error', () => undefined); // the server may close before the last chunks
      more();
    });
    assert.equal(streamed.status, 413, JSON.stringify(to));
  }
  await until(() => readdirSync(uploads).length === 0, 'the temporary files of the refused uploads to go');
});

test('one characterisation at a time: a second while one runs is refused; the upload is a private file, removed afterwards', async () => {
  const bytes = readFileSync(capture);
  let finish!: () => void;
  const first = post({ socket: d.admin }, '/v1/characterize?name=two.pcap', (req) => {
    req.write(bytes.subarray(0, 4096));
    finish = () => req.end(bytes.subarray(4096));
  });
  // while its body comes, the file is there, the daemon's alone
  await until(() => readdirSync(uploads).length === 1, 'the upload\'s temporary directory');
  const [sub] = readdirSync(uploads);
  const held = join(uploads, sub!);
  assert.equal(statSync(held).mode & 0o777, 0o700);
  await until(() => readdirSync(held).length === 1, 'the upload\'s file');
  assert.equal(statSync(join(held, readdirSync(held)[0]!)).mode & 0o777, 0o600);
  const status = await callJson<{ characterize: { running: string | null } }>(d.admin, 'GET', '/v1/status');
  assert.equal(status.characterize.running, 'the upload "two.pcap"');

  const second = await post({ base }, '/v1/characterize?name=two.pcap', bytes);
  assert.equal(second.status, 409, second.body);
  assert.equal(errorOf(second).code, 'QOS_ERR_CONFLICT');
  assert.match(errorOf(second).message, /characterising already \(the upload "two\.pcap"\); one at a time/);

  finish();
  const r = await first;
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(JSON.parse(r.body), cli('two.pcap').json);
  await until(() => readdirSync(uploads).length === 0, 'the upload\'s file to be removed');
  assert.equal((await callJson<{ characterize: { running: string | null } }>(d.admin, 'GET', '/v1/status')).characterize.running, null);
  const again = await post({ base }, '/v1/characterize?name=two.pcap', bytes);
  assert.equal(again.status, 200, 'free again');
});

test('live: a UDP flow the daemon knows, captured for 2 s, by pid and descriptor or by its addresses', async () => {
  const flow = await liveUdpFlow(d.socket, 500);
  const { fd, lport, rport } = flow;
  try {
    const flows = await callJson<{ pid: number; fd: number }[]>(d.admin, 'GET', '/v1/flows');
    assert.ok(flows.some((f) => f.pid === process.pid && f.fd === fd), JSON.stringify(flows));
    type Live = { file: string; flows: { key: string; packets: number; M: number; m: number; tspec: { r: number } }[]; online: unknown[] };
    const check = (r: Reply) => {
      assert.equal(r.status, 200, r.body);
      const j = JSON.parse(r.body) as Live;
      assert.equal(j.flows.length, 1, r.body.slice(0, 500));
      assert.equal(j.flows[0]!.key, `udp 127.0.0.1:${lport} > 127.0.0.1:${rport}`);
      assert.equal(j.flows[0]!.M, 500);
      assert.equal(j.flows[0]!.m, 500);
      assert.ok(j.flows[0]!.packets >= 20 && j.flows[0]!.packets <= 250, `${j.flows[0]!.packets} packets in 2 s at one per 10 ms`);
      assert.match(j.file, /^live capture on any/);
    };
    check(await post({ base }, '/v1/characterize/live', Buffer.from(JSON.stringify({ pid: process.pid, fd, seconds: 2 })), { 'content-type': 'application/json' }));
    const byAddr = { proto: 'udp', local: { address: '127.0.0.1', port: lport }, remote: { address: '127.0.0.1', port: rport }, seconds: 2 };
    check(await post({ socket: d.admin }, '/v1/characterize/live', Buffer.from(JSON.stringify(byAddr)), { 'content-type': 'application/json' }));

    const none = await post({ socket: d.admin }, '/v1/characterize/live', Buffer.from(JSON.stringify({ ...byAddr, remote: { address: '127.0.0.1', port: 9 } })));
    assert.equal(none.status, 404);
    assert.match(errorOf(none).message, /knows no open TCP or UDP flow udp 127\.0\.0\.1:\d+ > 127\.0\.0\.1:9/);
    for (const seconds of [0, 61, 1.5, '2']) {
      const r = await post({ socket: d.admin }, '/v1/characterize/live', Buffer.from(JSON.stringify({ pid: process.pid, fd, seconds })));
      assert.equal(r.status, 400, String(seconds));
      assert.match(errorOf(r).message, /seconds is a whole number from 1 to 60/);
    }
  } finally {
    flow.close();
  }
  await until(() => readdirSync(uploads).length === 0, 'the live capture\'s file to be removed');
});
