/* Bad input straight to a real daemon's agent socket: random, malformed, truncated and
 * oversized lines, and mutations of valid messages. Every case is followed by a sentinel
 * request (a Connect only the sentinel rule answers), so each case's effect can be told apart: a request
 * gets one reply (an ERROR if it is malformed), a notification none, a malformed notification
 * or an oversized line closes the connection. Meanwhile another agent keeps asking and must
 * keep getting right answers, and the daemon's memory must stay flat. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { callJson } from './admin-client.js';
import { decode, encode, MAX_LINE, NOTIFICATIONS, type MessageType } from '../protocol/messages.js';
import { SAMPLE_MESSAGES } from '../protocol/samples.js';
import { MAX_ERRORS } from './agents.js';
import { DaemonChild } from './child.js';
import { LineClient } from './line-client.js';

const CASES = Number(process.env.QOSD_FUZZ_CASES ?? 100_000);
const BATCH = 400;
const SENTINEL = 'Connect 1 0 fuzz 3 {2 192.0.2.9 9} {} {}';
const SENTINEL_REPLY = /^DSCP 56 CACHE \d+$/;
const POLICY = `rules:
  - { name: sentinel, match: { event: connect, remote_port: 9 }, action: { dscp: CS7 } }
  - { name: web, match: { event: connect, remote_port: 443 }, action: { dscp: AF41 } }
`;

const VALID = SAMPLE_MESSAGES;
const TOKENS = ['{', '}', '{}', '"', '\\', '\\x', '\\u12', '$x', '[cmd]', ';', '-1', '0', '4294967296', '99999999999', '1e9', 'NaN',
  '{2 1.2.3.4 80}', '{10 :: 0}', '{2 256.1.1.1 80}', '{2 1.2.3.4 65536}', '{{{{{{{{{{', '}}}}}', 'Startup', 'Close', 'Cached', '__proto__', 'constructor'];

/** xorshift32: reproducible, and unlike a power-of-two LCG its low bits are random too. */
class Rng {
  constructor(private s: number) {}
  int(n: number): number {
    let x = this.s;
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    this.s = x >>> 0;
    return this.s % n;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

/** One hostile line (no newline inside; the newline is the frame). */
function hostile(r: Rng, i: number): string {
  if (i % 5000 === 4999) return 'Socket 1 0 ' + 'x'.repeat(MAX_LINE + r.int(4000)); // oversized
  switch (r.int(6)) {
    case 0: { // random bytes, any value but the newline
      let s = '';
      for (let n = r.int(120); n > 0; n--) { const c = r.int(256); s += String.fromCharCode(c === 10 ? 11 : c); }
      return s;
    }
    case 1: { // a valid message, truncated anywhere
      const v = encode(r.pick(VALID));
      return v.slice(0, r.int(v.length + 1));
    }
    case 2: { // a valid message with tokens replaced, dropped or duplicated
      const parts = encode(r.pick(VALID)).split(' ');
      for (let k = 1 + r.int(3); k > 0; k--) {
        const at = r.int(parts.length);
        const op = r.int(3);
        if (op === 0) parts[at] = r.pick(TOKENS);
        else if (op === 1) parts.splice(at, 1);
        else parts.splice(at, 0, parts[at] ?? r.pick(TOKENS));
      }
      return parts.join(' ');
    }
    case 3: { // a valid message with bytes flipped
      const v = [...encode(r.pick(VALID))];
      for (let k = 1 + r.int(4); k > 0; k--) v[r.int(v.length)] = String.fromCharCode(r.int(128) || 1);
      return v.join('').replace(/\n/g, ' ');
    }
    case 4: // deep nesting, long numbers, long tokens
      return r.pick(['Connect 1 0 a 5 ' + '{'.repeat(2000 + r.int(2000)), 'Socket 1 0 ' + '9'.repeat(r.int(400)) + ' 1 0 5',
        'SendTo 1 0 a 5 {2 ' + '1.'.repeat(r.int(300)) + '1 80}', 'Cached 1 0 a ' + '7'.repeat(r.int(30)) + ' Socket 2 1 0 5']);
    default: // valid messages too: they must keep working in between
      return encode(r.pick(VALID));
  }
}

/** What the daemon must do with a line: answer it (reply), refuse it (error), say nothing
 * (silent: a well-formed notification), or hang up (closes: a malformed notification,
 * since any reply would be taken for the answer to the agent's next request). */
function expectation(line: string): 'reply' | 'error' | 'silent' | 'closes' {
  const notification = NOTIFICATIONS.has((/^\s*(\S*)/.exec(line)![1] ?? '') as MessageType);
  try {
    decode(line);
  } catch {
    return notification ? 'closes' : 'error';
  }
  return notification ? 'silent' : 'reply';
}

test(`${CASES} hostile lines: each gets an error reply or its connection closed; others keep being served; memory stays flat`, { timeout: 600_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-fuzz-'));
  // node's --expose-gc: each memory sample is taken after a full collection (GET /v1/status?gc=1)
  const daemon = await new DaemonChild(dir, POLICY, ['--nice', 'keep'], ['env', 'NODE_OPTIONS=--expose-gc']).start();
  let stop = false;
  const stats = { errors: 0, replies: 0, silent: 0, closed: 0, good: 0 };
  // The other agent: asks every 20 ms and checks the answer.
  const other = (async () => {
    const c = new LineClient(daemon.socket);
    c.sock.write('Startup 1 0 other 1\n');
    assert.equal(await c.next(), 'VERSION 1');
    for (let fd = 3; !stop; fd++) {
      c.sock.write(`Connect 1 0 other ${fd} {2 192.0.2.7 443} {} {}\n`);
      const reply = await c.next();
      assert.match(reply ?? 'closed', /^DSCP 34( CACHE \d+)?$/, 'the other agent got a wrong answer');
      stats.good++;
      await new Promise((r) => setTimeout(r, 20));
    }
    c.sock.destroy();
  })();
  try {
    const rng = new Rng(20261121);
    // Memory: the live heap after a full collection (the daemon runs with --expose-gc and each
    // sample asks for one: what is left is what the daemon keeps) is sampled every 2% of the
    // cases, with V8's old generation beside it. A leak grows them with the cases; a heap that
    // grew once and then stays (or RSS that V8 keeps) does not. (Without the collection, the
    // young generation grows with the allocation rate and garbage waits in the old one for the
    // next major collection, which on a loaded machine can come late.)
    const samples: { at: number; heap: number; old: number; rss: number }[] = [];
    let nextSample = 0;
    let c = new LineClient(daemon.socket);
    let errs = 0; // malformed lines on this connection: the MAX_ERRORS-th closes it
    const trace: string[] = []; // the last cases and what came back, for a failure message
    const note = (t: string) => { trace.push(t); if (trace.length > 8) trace.shift(); };
    for (let i = 0; i < CASES;) {
      const batch: string[] = [];
      for (let k = 0; k < BATCH && i + k < CASES; k++) batch.push(hostile(rng, i + k));
      // Each case, then the sentinel; a Cleanup at the end forgets the flows the valid ones made.
      c.sock.write(batch.map((l) => `${l}\n${SENTINEL}\n`).join('') + 'Cleanup 1 0 fuzz\n');
      let k = 0;
      for (; k < batch.length; k++) {
        const line = batch[k]!;
        const kind = expectation(line);
        const first = await c.next();
        note(`case ${i + k} (${kind}) ${JSON.stringify(line.slice(0, 60))} -> ${JSON.stringify(first?.slice(0, 60))}`);
        const where = () => `case ${i + k}; last cases:\n${trace.join('\n')}`;
        if (first === null) { // closed: only a malformed notification or an oversized line may do that
          assert.ok(kind === 'closes' || line.length > MAX_LINE, `connection closed: ${where()}`);
          stats.closed++;
          k++;
          break;
        }
        if (kind === 'silent') {
          assert.match(first, SENTINEL_REPLY, `a notification was answered: ${where()}`);
          stats.silent++;
          continue;
        }
        assert.notEqual(kind, 'closes', `a malformed notification did not close the connection: ${where()}`);
        if (kind === 'error') {
          assert.match(first, /^ERROR QOS_ERR_\w+ /, `no error reply: ${where()}`);
          stats.errors++;
          errs++;
        } else {
          assert.match(first, /^(VERSION 1|RING \d+|((OVERRIDE|TOS \d+|DSCP \d+|PRIORITY \d|DENY E[A-Z]+|CACHE \d+) ?)*)$/, `bad reply: ${where()}`);
          stats.replies++;
        }
        const sentinel = await c.next();
        if (sentinel === null && first.startsWith('ERROR QOS_ERR_MESSAGE_TOO_LONG')) { stats.closed++; k++; break; }
        if (errs === MAX_ERRORS) {
          assert.equal(sentinel, null, `the ${MAX_ERRORS}th malformed line did not close the connection: ${where()}`);
          stats.closed++;
          k++;
          break;
        }
        assert.match(sentinel ?? 'closed', SENTINEL_REPLY, `replies out of step: ${where()}`);
      }
      if (k < batch.length || c.sock.destroyed) {
        note(`reconnect after case ${i + k - 1}`);
        c.sock.destroy();
        c = new LineClient(daemon.socket);
        errs = 0;
      }
      i += k;
      if (i >= nextSample) {
        samples.push({ at: i / CASES, ...(await memory(daemon)) });
        nextSample = i + CASES / 50;
      }
    }
    samples.push({ at: 1, ...(await memory(daemon)) });
    c.sock.destroy();
    const low = (from: number, to: number, k: 'heap' | 'old') => Math.min(...samples.filter((x) => x.at >= from && x.at < to).map((x) => x[k]));
    const early = low(0.25, 0.5, 'heap'), late = low(0.75, 1.01, 'heap');
    const oldEarly = low(0.25, 0.5, 'old'), oldLate = low(0.75, 1.01, 'old');
    const rssGrew = samples[samples.length - 1]!.rss - samples.find((x) => x.at >= 0.25)!.rss;
    const mib = (n: number) => (n / 2 ** 20).toFixed(1);
    console.log(`# fuzz: ${JSON.stringify(stats)}, live heap after a full collection ${mib(early)} -> ${mib(late)} MiB (old generation ${mib(oldEarly)} -> ${mib(oldLate)}), rss +${mib(rssGrew)} MiB`);
    assert.ok(stats.errors > CASES / 4, 'most hostile lines were refused with an error');
    assert.ok(stats.closed > 0 && stats.silent > 0 && stats.replies > 0);
    assert.ok(late - early < 8 * 2 ** 20, `the daemon's live heap after a full collection grew from ${mib(early)} to ${mib(late)} MiB between the second and the last quarter`);
    assert.ok(rssGrew < 64 * 2 ** 20, `daemon RSS grew by ${mib(rssGrew)} MiB over the last 3/4 of the cases`);
  } catch (e) {
    console.log(`# daemon output:\n${daemon.log.slice(-3000).replace(/^/gm, '# ')}`);
    throw e;
  } finally {
    stop = true;
    await other;
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(stats.good > 10, `the other agent was answered ${stats.good} times`);
});

async function memory(d: DaemonChild): Promise<{ heap: number; old: number; rss: number }> {
  const s = await callJson<{ memory: { rss: number; heap_used: number; old_space_used: number } }>(d.admin, 'GET', '/v1/status?gc=1');
  return { heap: s.memory.heap_used, old: s.memory.old_space_used, rss: s.memory.rss };
}
