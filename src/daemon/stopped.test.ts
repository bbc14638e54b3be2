/* A daemon that was stopped (SIGSTOP) does not, once resumed, work through the questions of
 * programs that stopped waiting meanwhile: each agent gave up after its timeout, went on
 * without an answer and closed its connection; deciding those questions would only hold up
 * the programs asking now. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call, metricOf } from './admin-client.js';
import { STALL_MS } from './agents.js';
import { DaemonChild, QOS_CLI } from './child.js';

const PROGRAMS = 60;

async function connectDecisions(admin: string): Promise<{ pid: number; rule: string | null }[]> {
  const r = await call(admin, 'GET', '/v1/decisions?limit=10000');
  return r.body.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; pid: number; rule: string | null }).filter((d) => d.event === 'connect');
}

test('after SIGSTOP and SIGCONT the daemon drops the questions of agents that gave up, and answers the next program at once', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-stopped-'));
  const d = await new DaemonChild(dir, 'rules:\n  - { name: nine, match: { remote_port: 9 }, action: { dscp: EF } }\n', ['--kernel', 'off', '--nice', 'keep']).start();
  const pid = d.proc.pid!;
  // PROGRAMS processes, each connecting once (to a closed port on loopback) under the agent,
  // then staying alive (a program that is gone is refused at accept anyway)
  const burst = spawn(process.execPath, [QOS_CLI, 'run', '--socket', d.socket, '--', 'bash', '-c',
    `for i in $(seq ${PROGRAMS}); do ( : 3<>/dev/tcp/127.0.0.1/9 2>/dev/null; exec sleep 120 ) & done; wait`], { stdio: 'ignore', detached: true });
  const sleepers = () => Number(spawnSync('pgrep', ['-c', '-x', '-g', String(burst.pid), 'sleep'], { encoding: 'utf8' }).stdout.trim() || 0);
  try {
    process.kill(pid, 'SIGSTOP');
    try {
      // each has asked, waited out the agent's timeout and gone on: it sleeps
      for (let i = 0; i < 1200 && sleepers() < PROGRAMS; i++) await new Promise((res) => setTimeout(res, 50));
      assert.equal(sleepers(), PROGRAMS);
      // stopped for longer than the daemon takes for a stall (a shorter stop is a slow turn)
      await new Promise((res) => setTimeout(res, 2 * STALL_MS));
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    for (let i = 0; i < 400; i++) {
      if ((await metricOf(d.admin, 'qosd_agent_requests_unanswered_total')) >= PROGRAMS) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    const unanswered = await metricOf(d.admin, 'qosd_agent_requests_unanswered_total');
    assert.ok(unanswered >= PROGRAMS, `questions dropped: ${unanswered} (each program asked at least its connect)`);
    assert.deepEqual(await connectDecisions(d.admin), [], 'no connect was decided for a program that had stopped waiting');
    // the daemon is not behind: a program now is answered as the policy says
    const now = spawnSync(process.execPath, [QOS_CLI, 'run', '--socket', d.socket, '--', 'bash', '-c', '(exec 3<>/dev/tcp/127.0.0.1/9) 2>/dev/null; true'], { encoding: 'utf8' });
    assert.equal(now.status, 0, now.stderr);
    const after = await connectDecisions(d.admin);
    assert.deepEqual(after.map((x) => x.rule), ['nine']);
  } finally {
    try { process.kill(-burst.pid!, 'SIGKILL'); } catch { /* gone */ }
    try { process.kill(pid, 'SIGCONT'); } catch { /* exited */ }
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
