/* A real function the agent could not resolve is never called through a null pointer: the
 * call fails with ENOSYS, as under a libc that lacks it (issue 17, point 4). A test build of
 * the agent (agent/build/test/libqosagent-unresolved.so) clears the symbols when told to;
 * agent/test/unresolved.c makes every interposed socket call once and prints what it got. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
const LIB = join(ROOT, 'agent/build/test/libqosagent-unresolved.so');
const PROGRAM = join(ROOT, 'agent/build/test/unresolved');
const CALLS = ['socket', 'setsockopt', 'bind', 'sendto', 'sendmsg', 'sendmmsg', 'connect', 'shutdown', 'listen', 'accept', 'accept4', 'dup2', 'dup3', 'close'];
// The four the agent needs (without one it turns itself off); "some" keeps them.
const KEPT = new Set(['socket', 'setsockopt', 'connect', 'close']);

function run(unresolved: string): Map<string, string> {
  const env = { ...process.env, LD_PRELOAD: LIB, QOS_TEST_UNRESOLVED: unresolved, QOSD_SOCKET: '/nonexistent/agent.sock' };
  const r = spawnSync(PROGRAM, [], { encoding: 'utf8', env, timeout: 10_000 });
  assert.equal(r.status, 0, `unresolved (${unresolved}) exited ${r.status} ${r.signal ?? ''}: ${r.stderr}`);
  return new Map(r.stdout.trim().split('\n').map((l) => { const [name, ret, err] = l.split(' '); return [name!, `${ret} ${err}`]; }));
}

test('with no real function resolved, every interposed call fails with ENOSYS (the agent is off)', () => {
  const got = run('all');
  assert.deepEqual([...got.keys()], CALLS);
  for (const name of CALLS) assert.equal(got.get(name), '-1 ENOSYS', name);
});

test('with the agent on and some real functions missing, those calls fail with ENOSYS, the rest work', () => {
  const got = run('some');
  assert.deepEqual([...got.keys()], CALLS);
  for (const name of CALLS) {
    if (KEPT.has(name)) assert.doesNotMatch(got.get(name)!, /^-1 /, name);
    else assert.equal(got.get(name), '-1 ENOSYS', name);
  }
});
