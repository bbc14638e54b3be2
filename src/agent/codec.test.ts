/* The agent's message module (agent/msg.c, run alone as agent/build/test/codec) against the
 * TypeScript codec (src/protocol/): every request line the C code builds decodes to the message
 * meant, and every reply the daemon can send means the same to the C parser as to
 * decodeReply; a reply decodeReply refuses, the agent ignores. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decode, encode, type CacheableMessage, type Message, type SockAddr } from '../protocol/messages.js';
import { decodeReply, encodeAnyReply } from '../protocol/replies.js';
import { RING_SLOT_BYTES, RingReader } from '../protocol/note-ring.js';
import { everyReply, MALFORMED_REPLIES } from '../protocol/samples.js';

const CODEC = join(resolve(fileURLToPath(import.meta.url), '../../..'), 'agent/build/test/codec');

/** What `codec encode` builds, group by group (agent/test/codec.c): the messages and how many
 * of them get replies; null where the line does not fit. */
function expected(pid: number, uid: number, cmd: string): ([Message[], number] | null)[] {
  const h = { pid, uid, cmd };
  const gen = 1795287232097000;
  const a4: SockAddr = { family: 2, host: '192.0.2.10', port: 80 };
  const a6: SockAddr = { family: 10, host: '2001:db8::1', port: 443 };
  const dst: SockAddr = { family: 2, host: '192.0.2.9', port: 5004 };
  const sock = (fd: number, family: number, sockType: number, protocol: number): Message => ({ type: 'Socket', ...h, family, sockType, protocol, fd });
  const cached = (generation: number, inner: CacheableMessage): Message => ({ type: 'Cached', ...h, generation, inner });
  const connect = (fd: number, address: SockAddr): CacheableMessage => ({ type: 'Connect', ...h, fd, address, sqos: '', gqos: '' });
  const sendto = (fd: number, address: SockAddr): CacheableMessage => ({ type: 'SendTo', ...h, fd, address });
  const decided = sock(9, 10, 2, 0) as CacheableMessage;
  return [
    [[{ type: 'Startup', ...h, version: 1 }], 1],
    [[{ type: 'Ring', ...h, cmd: '', layout: 1 }], 1],
    [[sock(5, 2, 1, 0)], 1],
    [[sock(5, 2, 1, 0), connect(5, a4)], 2],
    [[connect(6, a6)], 1],
    [[connect(6, { family: 10, host: '::ffff:192.0.2.1', port: 65535 })], 1],
    [[{ type: 'Bind', ...h, fd: 6, address: { family: 10, host: '::', port: 0 } }], 1],
    [[sock(3, 2, 1, 0), { type: 'Listen', ...h, fd: 3, backlog: 128 }], 2],
    [[{ type: 'Listen', ...h, fd: 1048575, backlog: -1 }], 1],
    [[sock(3, 2, 1, 0), { type: 'Accept', ...h, fd: 3, address: { family: 2, host: '10.0.0.1', port: 5555 }, newfd: 7 }], 2],
    [[{ type: 'Accept', ...h, fd: 3, address: { family: 0, host: '', port: 0 }, newfd: 8 }], 1],
    [[sock(8, 2, 2, 17), sendto(8, dst)], 2],
    [[cached(42, decided), sendto(9, a6)], 1],
    [[{ type: 'SetSockOpt', ...h, fd: 4, level: 0, optname: 1, value: 184 }], 1],
    [[sock(4, 2, 2, 17), { type: 'SetSockOpt', ...h, fd: 4, level: 41, optname: 67, value: 0 }], 2],
    [[{ type: 'Shutdown', ...h, fd: 4, how: 1 }], 0],
    [[{ type: 'Close', ...h, fd: 4 }], 0],
    [[cached(42, decided), { type: 'Close', ...h, fd: 9 }], 0],
    [[{ type: 'Cleanup', ...h }], 0],
    [[cached(gen, sock(5, 2, 1, 0) as CacheableMessage), cached(gen, connect(5, a4))], 0],
    [[cached(gen, sock(8, 2, 2, 17) as CacheableMessage), cached(gen, sendto(8, dst))], 0],
    [[cached(42, decided), cached(gen, connect(9, a6))], 0],
    null,
  ];
}

/** The command line as the agent reads it: /proc/self/cmdline, its last NULs dropped and the
 * others made spaces, at most 4000 bytes (QOS_MAX_CMD). */
function cmdOf(argv: string[]): string {
  return Buffer.from(argv.join('\0') + '\0').subarray(0, 4000).toString('utf8').replace(/\0+$/, '').replaceAll('\0', ' ');
}

const COMMAND_LINES: { argv0?: string; args: string[] }[] = [
  { args: [] },
  { args: ['a b', '{', '}', '{x', '\\', 'a\\', '"q"', '$x', '[cmd]', ';'] },
  { args: ['#c', 'tab\there', 'nl\nline', '\x01\x7f', 'é ü 日本', '', 'end'] },
  { args: ['trailing', '', ''] },
  { argv0: '', args: [] },
  { argv0: '#hash', args: [] },
  { args: ['x'.repeat(3000), 'y '.repeat(1000)] },
];

test('every request line msg.c builds decodes to the message meant, and TypeScript encodes it alike', () => {
  for (const { argv0, args } of COMMAND_LINES) {
    const r = spawnSync(CODEC, ['encode', ...args], { encoding: 'utf8', ...(argv0 !== undefined ? { argv0 } : {}) });
    assert.equal(r.status, 0, r.stderr);
    const cmd = cmdOf([argv0 ?? CODEC, 'encode', ...args]);
    const want = expected(r.pid!, process.getuid!(), cmd);
    const lines = r.stdout.split('\n');
    assert.equal(lines.pop(), '', 'output ends in a newline');
    let i = 0;
    for (const [g, group] of want.entries()) {
      const where = `group ${g}, command line ${JSON.stringify(cmd.slice(0, 60))}`;
      if (group === null) { assert.equal(lines[i++], '! does not fit', where); continue; }
      const [messages, nreq] = group;
      for (const m of messages) {
        const line = lines[i++]!;
        assert.deepEqual(decode(line), m, `${where}: ${line.slice(0, 120)}`);
        // TypeScript quotes with braces where it can, the agent always with backslashes: the
        // same list, so the same bytes wherever the command line needs no quoting.
        if (!/[\s{}[\]$;"\\#\x00-\x1f\x7f]/.test(cmd)) assert.equal(encode(m), line, where);
        else assert.deepEqual(decode(encode(m)), m, where);
      }
      assert.equal(lines[i++], `= ${nreq}`, `${where}: lines that get replies`);
    }
    assert.equal(i, lines.length, 'no line left over');
  }
});

/** What the agent makes of a decoded reply, as `codec parse` prints it. */
function agentView(line: string): string {
  let r;
  try { r = decodeReply(line); } catch { return '-1 -1 - 0 0 -1 -1'; }
  if ('version' in r) return `-1 -1 - 0 0 ${r.version} -1`;
  if ('ring' in r) return `-1 -1 - 0 0 -1 ${r.ring}`;
  if ('error' in r || !r.decision) return `-1 -1 - 0 ${'error' in r ? 0 : r.cache ?? 0} -1 -1`;
  const d = r.decision;
  const tos = d.tos ?? (d.dscp !== undefined ? d.dscp << 2 : -1);
  return `${tos} ${d.priority ?? -1} ${d.deny ?? '-'} ${d.override ? 1 : 0} ${r.cache ?? 0} -1 -1`;
}

test('every reply the daemon sends means the same to the agent as to decodeReply, and what it refuses the agent ignores', () => {
  const lines = [...everyReply().map(encodeAnyReply), ...MALFORMED_REPLIES, 'DSCP 34  \t CACHE 5\r', 'TOS 48 DSCP 10', 'OVERRIDE'];
  for (const l of lines) assert.ok(!l.includes('\n'), JSON.stringify(l));
  const r = spawnSync(CODEC, ['parse'], { input: lines.join('\n') + '\n', encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const got = r.stdout.split('\n');
  got.pop();
  assert.equal(got.length, lines.length);
  for (const [i, l] of lines.entries()) assert.equal(got[i], agentView(l), JSON.stringify(l));
  // the test is not vacuous: refused lines and decisions are told apart
  assert.ok(got.some((g) => g.startsWith('184 ')) && got.includes('-1 -1 EPERM 0 2 -1 -1') && got.includes('-1 -1 - 0 0 1 -1') && got.includes('-1 -1 - 0 0 -1 1024'));
});

test('the records ring.c writes read back as the messages the lines for the same calls decode to', () => {
  const slots = 64;
  const dir = mkdtempSync(join(tmpdir(), 'qos-ring-'));
  const file = join(dir, 'ring');
  writeFileSync(file, Buffer.alloc(slots * RING_SLOT_BYTES));
  // every address form inet_ntop writes: compressed runs (first of equal, longest), mapped and
  // compatible IPv4, no run of one zero, leading and trailing runs, all zeros, all ones
  const addrs = ['10.1.2.3', '255.255.255.255', '0.0.0.0', '::', '::1', '1::', '2001:db8::1', '2001:db8:0:1:1:1:1:1',
    '2001:0:0:1::1', '1:0:0:2:0:0:0:3', '1:0:0:2:0:0:3:4', '::ffff:192.0.2.1', '::192.0.2.1', '::ffff:0:1', '::1:0:0:0:0',
    'fe80::1:2:3:4', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '0:1::', '::0.0.0.2'];
  const r = spawnSync(CODEC, ['ring', file, String(slots), ...addrs], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), new Array(7 + addrs.length).fill('0'), 'every record was written');
  const buf = new Uint8Array(readFileSync(file)).buffer;
  rmSync(dir, { recursive: true });
  const who = { pid: 4242, uid: 1000, cmd: 'curl -s http://192.0.2.10/' };
  const h = who;
  const gen = 1795287232097000;
  const reader = new RingReader(buf, slots);
  const got: unknown[] = [];
  for (let m = reader.next(who); m !== null; m = reader.next(who)) got.push(m);
  const connect = (fd: number, address: SockAddr): CacheableMessage => ({ type: 'Connect', ...h, fd, address, sqos: '', gqos: '' });
  const want: Message[] = [
    { type: 'Cached', ...h, generation: gen, inner: { type: 'Socket', ...h, family: 2, sockType: 1, protocol: 0, fd: 5 } },
    { type: 'Cached', ...h, generation: gen, inner: connect(5, { family: 2, host: '192.0.2.10', port: 80 }) },
    { type: 'Cached', ...h, generation: 42, inner: { type: 'Socket', ...h, family: 10, sockType: 2, protocol: 17, fd: 8 } },
    { type: 'Cached', ...h, generation: 42, inner: { type: 'SendTo', ...h, fd: 8, address: { family: 10, host: '2001:db8::1', port: 443 } } },
    { type: 'Shutdown', ...h, fd: 5, how: 1 },
    { type: 'Close', ...h, fd: 5 },
    { type: 'Cached', ...h, generation: gen, inner: { type: 'Socket', ...h, family: 10, sockType: 1, protocol: 6, fd: 6 } },
    { type: 'Cached', ...h, generation: gen, inner: connect(6, { family: 10, host: '2001:db8::2', port: 8443 }) },
    ...addrs.map((a, i): Message => {
      // the host as the agent's line would carry it (inet_ntop): the C codec's own text
      const line = spawnSync(CODEC, ['ntop', a], { encoding: 'utf8' }).stdout.trim();
      return { type: 'Cached', ...h, generation: gen, inner: connect(104 + i, { family: a.includes(':') ? 10 : 2, host: line, port: 1000 + i }) };
    }),
  ];
  assert.deepEqual(got, want);
  // each decodes as its line would: what the daemon records is the same either way
  for (const m of want) assert.deepEqual(decode(encode(m)), m);
  assert.equal(reader.next(who), null, 'every slot read is free again');
});
