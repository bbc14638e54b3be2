/* The shipped examples/ef-per-user policy in the daemon's decider, with its script in a real
 * worker pool: its decisions, and what a call costs when the user holds tens of thousands
 * of sockets (what the script asks the daemon for, and how big the answer is). */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { PolicyEngine, type Identity } from '../policy/engine.js';
import { loadPolicyFile } from '../policy/load.js';
import { decode } from '../protocol/messages.js';
import { DEFAULT_LIMITS } from '../script/js-sandbox.js';
import { ScriptPool } from '../script/pool.js';
import { Decider, type Outcome, type ScriptHost } from './decide.js';
import { FlowTable } from './flows.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/ef-per-user/policy.yaml', import.meta.url));

const person = (uid: number, pid: number, cmdline: string): Identity => ({
  pid, uid, gid: uid, user: `u${uid}`, group: `u${uid}`, exe: `/usr/bin/${cmdline.split(' ')[0]}`, cmdline, unit: '', cgroup: '',
});

test('examples/ef-per-user: two EF flows per user; a user holding 60,000 other sockets costs each call the same small answer, not a list of them', { timeout: 120_000 }, async () => {
  const { doc, script } = await loadPolicyFile(EXAMPLE);
  // The daemon waits for every answer here (the default answer time is for programs whose
  // agent gives up): this test is about what the script asks, not how fast this machine is.
  const pool = await ScriptPool.start(script!.source, script!.path, { workers: 1, limits: { ...DEFAULT_LIMITS, deadlineMs: 2000, answerMs: 60_000, nice: null } });
  const asked: { full: boolean; chars: number }[] = [];
  const host: ScriptHost = {
    handlers: pool.handlers,
    decide: (handler, uid, req) => pool.decide(handler, uid, {
      ...req,
      state: (full) => { const s = req.state(full); asked.push({ full, chars: s.length }); return s; },
    }),
  };
  const flows = new FlowTable();
  let listed = 0;
  const ofUser = flows.ofUser.bind(flows);
  flows.ofUser = (uid) => { listed++; return ofUser(uid); };
  const d = new Decider(flows, () => ({ engine: new PolicyEngine(doc), generation: 3, script: host }));
  const ask = async (line: string, id: Identity) => ((await d.handle(decode(line), id)) as Outcome).reply;
  try {
    // Alice's backup job holds 60,000 sockets (the rules decide those: it is no media program).
    const backup = person(1000, 100, 'backup --all');
    for (let fd = 3; fd < 60_003; fd++) await ask(`Socket 100 1000 x 2 1 6 ${fd}`, backup);
    assert.equal(flows.userCounts(1000).flows, 60_000);
    const media = person(1000, 200, 'media-player --hd');
    const connect = async (id: Identity, fd: number) => {
      await ask(`Socket ${id.pid} ${id.uid} x 2 1 6 ${fd}`, id);
      return ask(`Connect ${id.pid} ${id.uid} x ${fd} {2 192.0.2.1 5004} {} {}`, id);
    };
    assert.deepEqual([await connect(media, 3), await connect(media, 4), await connect(media, 5)], ['DSCP 46', 'DSCP 46', 'DSCP 34']);
    assert.equal(await connect(person(1001, 300, 'media-player'), 3), 'DSCP 46', 'bob counts his own');
    await ask('Close 200 1000 x 3', media);
    assert.equal(await connect(media, 6), 'DSCP 46', 'an EF flow closed: EF again');
    assert.equal(await ask('Connect 200 1000 x 7 {2 192.0.2.1 22} {} {}', person(1000, 201, 'ssh host')), 'DSCP 48', 'not a media program: the rules');
    // What that cost: one small summary per scripted call, never the user's flow list.
    assert.equal(asked.length, 5);
    assert.ok(asked.every((a) => !a.full && a.chars < 120), JSON.stringify(asked));
    assert.equal(listed, 0, 'no list of the user\'s flows was built');
  } finally {
    await pool.close();
  }
});
