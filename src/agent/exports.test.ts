/* The agent is a guest in every process it is preloaded into: it exports the libc functions
 * it interposes and nothing else, so that none of its internals (qos_*) can collide with, or
 * be called by, the host program or its other libraries (issue 17, point 4). */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const LIB = join(resolve(fileURLToPath(import.meta.url), '../../..'), 'agent/build/libqosagent.so');

// Every function the agent interposes (agent/hooks.c, agent/creds.c; docs/agent.md).
const INTERPOSED = [
  'socket', 'connect', 'bind', 'listen', 'accept', 'accept4', 'close', 'shutdown',
  'sendto', 'sendmsg', 'sendmmsg', 'setsockopt', 'dup2', 'dup3', 'close_range', 'closefrom',
  'setuid', 'seteuid', 'setreuid', 'setresuid', 'setgid', 'setegid', 'setregid', 'setresgid', 'setgroups',
];

test('the agent library exports exactly the functions it interposes', () => {
  const r = spawnSync('nm', ['-D', '--defined-only', LIB], { encoding: 'utf8' });
  assert.equal(r.status, 0, `nm -D ${LIB}: ${r.stderr}`);
  const exported = r.stdout.split('\n').map((l) => l.trim().split(/\s+/)[2]).filter((s): s is string => !!s);
  assert.deepEqual([...new Set(exported)].sort(), [...INTERPOSED].sort());
});
