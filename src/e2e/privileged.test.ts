/* The agent where a hostile local user can reach it (issue 15): in setuid and file-capability
 * programs (loaded through /etc/ld.so.preload, in a private mount namespace so the machine's
 * /etc is never touched), pointed by that user at a daemon of their own; and in a root process
 * that drops to another user after it has talked to the daemon. The DS field on the wire,
 * read by tshark, and the daemon's decision log show who decided each connection. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { call } from '../daemon/admin-client.js';
import { AGENT_LIBRARY } from '../paths.js';
import { AGENT_TEST_BIN, AGENT_TIMEOUT_MS, requireE2e, sh, TestDaemon, Testbed, waitFor } from './harness.js';
import { asUser, testUser, type TestUser } from './users.js';

requireE2e('setcap');
const DIAL = 7500, DROP1 = 7501, DROP2 = 7502, RAW1 = 7503, RAW2 = 7504;
const bin = (name: string) => join(AGENT_TEST_BIN, name);
let tb: Testbed;
let daemon: TestDaemon;
let hostile: TestUser;
let dropped: TestUser;
let views = 0;
let fakes = 0;

const policy = () => `
rules:
  - { name: privileged, match: { exe: "*/privileged_*", event: connect }, action: { dscp: CS5 } }
  - { name: dropped, match: { user: ${dropped.name}, event: connect }, action: { dscp: AF41 } }
  - { name: root, match: { user: root, event: connect }, action: { dscp: CS1 } }
`;

before(async () => {
  hostile = testUser('ag-hostile');
  dropped = testUser('ag-drop');
  tb = new Testbed();
  // the test users reach the daemon's socket, the fake daemon's and the privileged copies
  chmodSync(tb.dir, 0o755);
  mkdirSync(join(tb.dir, 'qosd'));
  // privileged programs read no QOSD_TIMEOUT_MS: they take the daemon's deadline, which these
  // tests of who decides make long, as QOSD_TIMEOUT_MS does for the others (AGENT_TIMEOUT_MS)
  daemon = await new TestDaemon(join(tb.dir, 'qosd'), policy(), ['--agent-timeout-ms', String(AGENT_TIMEOUT_MS)]).start();
  for (const port of [DIAL, DROP1, DROP2, RAW1, RAW2]) await tb.sink(port);
});

after(async () => {
  await daemon.stop();
  tb.cleanup();
});

interface FakeDaemon {
  socket: string;
  dir: string;
  /** agents that connected */
  connections(): number;
  /** lines they sent (requests and notifications) */
  lines(): number;
}

/** A "daemon" run by the hostile user: it answers every request with reply (Startup with
 * VERSION 1) and prints "connection" for each agent that connects and "line" for each line. */
async function fakeDaemon(reply: string): Promise<FakeDaemon> {
  const dir = join(tb.dir, `fake${fakes++}`);
  mkdirSync(dir);
  chownSync(dir, hostile.uid, hostile.gid);
  const socket = join(dir, 'agent.sock');
  const js = `const [path, reply] = process.argv.slice(1);
    require('net').createServer((s) => {
      console.log('connection');
      let buf = '';
      s.on('error', () => {});
      s.on('data', (d) => {
        buf += d;
        for (let nl = buf.indexOf('\\n'); nl >= 0; nl = buf.indexOf('\\n')) {
          const type = buf.slice(0, buf.indexOf(' '));
          buf = buf.slice(nl + 1);
          console.log('line');
          if (type === 'Startup') s.write('VERSION 1\\n');
          else if (!['Close', 'Shutdown', 'Cleanup', 'Cached'].includes(type)) s.write(reply + '\\n');
        }
      });
    }).listen(path, () => { require('fs').chmodSync(path, 0o666); console.log('listening'); });`;
  const p = tb.start(asUser(hostile, [process.execPath, '-e', js, socket, reply]));
  let out = '';
  p.stdout!.on('data', (d: Buffer) => (out += d));
  await waitFor('the fake daemon to listen', () => out.includes('listening') || p.exitCode !== null);
  assert.match(out, /listening/, 'the fake daemon started');
  const count = (what: string) => out.split('\n').filter((l) => l === what).length;
  return { socket, dir, connections: () => count('connection'), lines: () => count('line') };
}

/** A copy of privileged_dial made privileged by prepare (chmod u+s, setcap), in a directory
 * the test users can reach. */
function privilegedCopy(name: string, prepare: (path: string) => void): string {
  const path = join(tb.dir, name);
  copyFileSync(bin('privileged_dial'), path);
  prepare(path);
  return path;
}

/** Runs argv in the client namespace with the agent in /etc/ld.so.preload (a private view)
 * and, with qosdDir, that directory as /run/qosd (so its agent.sock is the default path). */
function withSystemAgent(argv: string[], qosdDir: string | null, env: NodeJS.ProcessEnv) {
  const work = join(tb.dir, `view${views++}`);
  return tb.inClient([bin('preload_view'), work, AGENT_LIBRARY, qosdDir ?? '-', ...argv], { env: { ...process.env, ...env } });
}

async function synDscp(cap: Awaited<ReturnType<Testbed['capture']>>, srcPort: number): Promise<number[]> {
  return (await cap.packets()).filter((p) => p.srcPort === srcPort && p.syn && !p.ack).map((p) => p.dscp);
}

const SYN_TO = (port: number) => `tcp dst port ${port} and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn`;

test('a setuid-root program ignores QOSD_SOCKET and a daemon of the calling user, even on the default path', async () => {
  // The hostile user's "daemons" refuse every connect: one where QOSD_SOCKET points, one on the
  // default socket path (outside a setuid program, a daemon of our own user is trusted).
  const fake = await fakeDaemon('DENY ECONNREFUSED');
  const squatter = await fakeDaemon('DENY ECONNREFUSED');
  const prog = privilegedCopy('privileged_setuid', (p) => chmodSync(p, 0o4755));
  const cap = await tb.capture(SYN_TO(DIAL));
  const r = withSystemAgent(asUser(hostile, [prog, tb.serverIp, String(DIAL)]), squatter.dir, { QOSD_SOCKET: fake.socket, QOSD_DEBUG: '1' });
  const m = /^secure=1 euid=0 agent=1 port=(\d+)$/.exec(r.stdout.trim());
  assert.ok(m, `setuid root, the agent loaded, the connect succeeded: ${r.stdout}${r.stderr}`);
  assert.equal(r.status, 0);
  assert.equal(r.stderr, '', 'QOSD_DEBUG is not honoured: nothing printed');
  assert.deepEqual(await synDscp(cap, Number(m[1])), [0], 'the SYN left unmarked');
  assert.equal(fake.connections(), 0, 'the agent never connected to QOSD_SOCKET');
  // the agent learns who runs the daemon on the default path from the connection (SO_PEERCRED)
  // (the fake daemon says so on its stdout, which comes when it comes)
  await waitFor('the fake daemon on the default path to report the agent\'s connection', () => squatter.connections() > 0);
  assert.equal(squatter.connections(), 1, 'the agent looked at the daemon on the default path, once');
  assert.equal(squatter.lines(), 0, 'and hung up without a word: not root');
});

test('a file-capability program is served by the root daemon on the default path, not the user\'s QOSD_SOCKET', async () => {
  const fake = await fakeDaemon('DSCP EF');
  const prog = privilegedCopy('privileged_cap', (p) => {
    const r = sh(['setcap', 'cap_net_raw+ep', p]);
    assert.equal(r.status, 0, `setcap: ${r.stderr}`);
  });
  const cap = await tb.capture(SYN_TO(DIAL));
  const r = withSystemAgent(asUser(hostile, [prog, tb.serverIp, String(DIAL)]), daemon.dir, { QOSD_SOCKET: fake.socket, QOSD_DEBUG: '1' });
  const m = new RegExp(`^secure=1 euid=${hostile.uid} agent=1 port=(\\d+)$`).exec(r.stdout.trim());
  assert.ok(m, `secure mode (file capabilities), the agent loaded, the connect succeeded: ${r.stdout}${r.stderr}`);
  assert.equal(r.stderr, '', 'QOSD_DEBUG is not honoured: nothing printed');
  assert.deepEqual(await synDscp(cap, Number(m[1])), [40], 'CS5 from the root daemon\'s policy, not EF from the user\'s daemon');
  assert.equal(fake.connections(), 0, 'the agent never connected to the user\'s daemon');
});

interface Decision { event: string; user: string; rule: string | null; cached: boolean; remote: { port: number } | null }

/** The daemon's connect decisions to these ports, as "user rule port [cached]", sorted. */
async function decided(ports: number[]): Promise<string[]> {
  const r = await call(daemon.admin, 'GET', '/v1/decisions?limit=1000');
  return r.body.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Decision)
    .filter((d) => d.event === 'connect' && d.remote !== null && ports.includes(d.remote.port))
    .map((d) => `${d.user} ${d.rule} ${d.remote!.port}${d.cached ? ' cached' : ''}`).sort();
}

/** Runs drop_privileges under the agent as root; returns its connects (who, thread, port). */
function runDrop(mode: 'libc' | 'raw', p1: number, p2: number): { who: string; thread: string; port: number }[] {
  const r = tb.inClient(daemon.run(bin('drop_privileges'), mode, tb.serverIp, String(p1), String(p2), String(dropped.uid), String(dropped.gid)));
  assert.equal(r.status, 0, r.stdout + r.stderr);
  return r.stdout.trim().split('\n').map((l) => {
    const [who, thread, port] = l.split(' ');
    return { who: who!, thread: thread!, port: Number(port) };
  });
}

test('a root process that drops to another user after connecting is decided as that user, cached answers included, in every thread', async () => {
  const cap = await tb.capture(`${SYN_TO(DROP1)} or ${SYN_TO(DROP2)}`);
  const conns = runDrop('libc', DROP1, DROP2);
  assert.equal(conns.length, 8);
  const pkts = await cap.packets();
  for (const c of conns) {
    const dscp = pkts.filter((p) => p.srcPort === c.port && p.syn).map((p) => p.dscp);
    assert.deepEqual(dscp, [c.who === 'root' ? 8 : 34], `${c.who} ${c.thread} to port ${c.port}: ${c.who === 'root' ? 'CS1' : 'AF41'}`);
  }
  const user = `${dropped.name} dropped`;
  const seen = await decided([DROP1, DROP2]);
  // after the drop the cached answer is gone: each thread asks again, as the user
  assert.deepEqual(byUser(seen, false), [`${user} ${DROP1}`, `${user} ${DROP1}`, `${user} ${DROP2}`, `${user} ${DROP2}`]);
  assert.deepEqual(byUser(seen, true), [`root root ${DROP1}`], 'root decided only the connects made before the drop');
});

/** The decisions for root (each once, cached or not) or for anyone else (all). A Cached
 * notification sent just before the agent reconnects may be dropped by the daemon with the
 * old connection, so how many of root's arrive is not asserted. */
function byUser(seen: string[], root: boolean): string[] {
  if (!root) return seen.filter((d) => !d.startsWith('root '));
  return [...new Set(seen.filter((d) => d.startsWith('root ')).map((d) => d.replace(/ cached$/, '')))];
}

test('a drop made with raw system calls (not through libc) is noticed at the next question', async () => {
  const cap = await tb.capture(`${SYN_TO(RAW1)} or ${SYN_TO(RAW2)}`);
  const conns = runDrop('raw', RAW1, RAW2);
  assert.deepEqual(conns.map((c) => `${c.who} ${c.thread}`), ['root main', 'root main', 'user main', 'user main']);
  const pkts = await cap.packets();
  for (const c of conns) {
    const dscp = pkts.filter((p) => p.srcPort === c.port && p.syn).map((p) => p.dscp);
    assert.deepEqual(dscp, [c.who === 'root' ? 8 : 34], `${c.who} to port ${c.port}`);
  }
  const seen = await decided([RAW1, RAW2]);
  // the first question after the drop finds the credentials changed; the cache goes with the connection
  assert.deepEqual(byUser(seen, false), [`${dropped.name} dropped ${RAW1}`, `${dropped.name} dropped ${RAW2}`]);
  assert.deepEqual(byUser(seen, true), [`root root ${RAW1}`]);
});
