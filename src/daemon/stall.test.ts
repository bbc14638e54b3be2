/* The agent server's stall watch on a manual clock: beats on time are not a stall; time that
 * passes while the loop does not run (a stop) is, and questions then wait for the turn after
 * their read for CATCH_UP_MS (src/daemon/stopped.test.ts shows what that does for a real
 * stopped daemon). */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { ManualClock } from '../clock.js';
import { parsePolicy } from '../policy/load.js';
import { PolicyEngine } from '../policy/engine.js';
import { AgentServer, STALL_MS } from './agents.js';
import { Decider } from './decide.js';
import { FlowTable } from './flows.js';
import { IdentityResolver } from './identity.js';
import { Metrics } from './metrics.js';

test('a stop longer than STALL_MS makes the server answer questions a turn later, for a while; beats on time never do', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-stall-'));
  const clock = new ManualClock(10_000);
  const server = new AgentServer({
    path: join(dir, 'agent.sock'), clock, metrics: new Metrics(), log: pino({ level: 'silent' }), identities: new IdentityResolver(),
    decider: new Decider(new FlowTable(), () => ({ engine: new PolicyEngine(parsePolicy('rules: []\n')), generation: 1, script: null })),
    onDecision: () => undefined, onDisconnect: () => undefined,
  });
  await server.listen();
  try {
    clock.advance(60_000);
    assert.equal(server.behind(), false, 'a minute of beats on time');
    clock.stall(STALL_MS / 2);
    clock.advance(0);
    assert.equal(server.behind(), false, 'a gap under STALL_MS is a slow turn');
    clock.stall(3 * STALL_MS);
    assert.equal(server.behind(), true, 'noticed at once, before the late beat');
    clock.advance(0);
    clock.advance(4_000);
    assert.equal(server.behind(), true, 'still catching up');
    clock.advance(1_500);
    assert.equal(server.behind(), false, 'caught up');
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
