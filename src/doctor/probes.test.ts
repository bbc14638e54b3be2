/* The doctor's verdicts from its checks (pure): what qosd needs and lacks fails, what is
 * optional or unused is said, and each line names the fix. */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkLine, summarize, type Check } from './probes.js';

const c = (over: Partial<Check>): Check => ({ id: 'x', what: 'qdisc x', ok: true, needed: true, for: 'host traffic control', detail: 'available', ...over });

test('a needed check failing fails the host; optional and unused ones are listed, not failed', () => {
  const checks = [
    c({ id: 'qdisc:htb', what: 'qdisc htb' }),
    c({ id: 'qdisc:netem', what: 'qdisc netem', ok: false, needed: false, unused: true, for: 'it shapes with HTB and TBF', detail: 'Error: Specified qdisc kind is unknown.' }),
    c({ id: 'preload', what: '/etc/ld.so.preload names the agent', ok: false, needed: false, for: 'every program', detail: 'no', fix: 'sudo qos install --preload' }),
  ];
  assert.deepEqual(summarize(checks), { ok: true, needed_missing: [], optional_missing: ['/etc/ld.so.preload names the agent'], not_available: ['qdisc netem'] });
  const bad = [...checks, c({ id: 'nft', what: 'nftables (nft)', ok: false, detail: 'nft is not installed', for: 'kernel rules', fix: 'apt-get install nftables' })];
  assert.deepEqual(summarize(bad).needed_missing, ['nftables (nft): nft is not installed']);
  assert.equal(summarize(bad).ok, false);
  assert.deepEqual(bad.map(checkLine), [
    'ok   qdisc htb: available',
    ' --  qdisc netem: not available (Error: Specified qdisc kind is unknown.); qosd does not use it: it shapes with HTB and TBF',
    ' --  /etc/ld.so.preload names the agent: no; optional, for every program: sudo qos install --preload',
    'FAIL nftables (nft): nft is not installed; needed for kernel rules; fix: apt-get install nftables',
  ]);
});
