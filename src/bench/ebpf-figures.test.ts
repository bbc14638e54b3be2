/* The figures of `qos bench ebpf` from runs (ebpf-figures.ts): ratios within pairs, the marks
 * check, the policy text. */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from 'yaml';
import { ebpfFigures, exePolicy, markingProblem, type PairRun, type SideRun } from './ebpf-figures.js';

const side = (connect_ns: number, bps: number, tos = 0, iperfTos = 0, daemon_cpu_ms = 0): SideRun => ({ connect_ns, bps, connect_tos: [tos, tos], syn_tos: [iperfTos, iperfTos], daemon_cpu_ms });
const TOS = { client: 184, iperf: 136 };

test('a figure is the median of the per-pair ratios with their min and max, so a machine slowing between pairs does not move it', () => {
  const pairs: PairRun[] = [
    { first: 'without', with: side(1020, 9e9, 0, 0, 40), without: side(1000, 10e9, 0, 0, 10) },
    // every run twice as slow: the ratios are what they were
    { first: 'with', with: side(2100, 4.5e9), without: side(2000, 5e9) },
    { first: 'without', with: side(3000, 3e9), without: side(3000, 3e9) },
  ];
  const f = ebpfFigures(pairs);
  assert.deepEqual(f.connect_ratio, { median: 1.02, min: 1, max: 1.05 });
  assert.deepEqual(f.throughput_ratio, { median: 0.9, min: 0.9, max: 1 });
  assert.deepEqual(f.connect_ns.without, { median: 2000, min: 1000, max: 3000 });
  assert.deepEqual(f.throughput_gbps.with, { median: 4.5, min: 3, max: 9 });
  assert.deepEqual(f.daemon_cpu_ms_connect_run, { with: { median: 0, min: 0, max: 40 }, without: { median: 0, min: 0, max: 10 } });
  assert.deepEqual(f.targets.connect_ratio, { value: 1.02, limit: 1.05, ok: true });
  assert.deepEqual(f.targets.throughput_ratio, { value: 0.9, limit: 0.98, ok: false });
});

test('no pairs make no figures', () => {
  assert.throws(() => ebpfFigures([]), /no pairs/);
});

test('with the programs every socket looked at must carry its rule\'s mark, without them none', () => {
  assert.equal(markingProblem('with', side(1, 1, 184, 136), TOS), null);
  assert.equal(markingProblem('without', side(1, 1), TOS), null);
  assert.match(markingProblem('with', side(1, 1, 0, 136), TOS) ?? '', /^with the eBPF programs: the static client's sockets had IP_TOS \[0, 0\], not 184$/);
  assert.match(markingProblem('with', { connect_tos: [184, 0], syn_tos: [136, 136] }, TOS) ?? '', /IP_TOS \[184, 0\]/, 'marked before the loop, not after');
  assert.match(markingProblem('without', side(1, 1, 0, 136), TOS) ?? '', /^without the eBPF programs: iperf3's SYNs carried TOS \[136, 136\], not 0$/);
  assert.match(markingProblem('with', { connect_tos: [184, 184], syn_tos: [136] }, TOS) ?? '', /1 iperf3 SYNs captured/, 'nothing seen is nothing checked');
  assert.match(markingProblem('with', { connect_tos: [], syn_tos: [136, 136] }, TOS) ?? '', /IP_TOS \[\]/);
});

test('the policy has one exe rule per file, in order, any path written as it is', () => {
  const text = exePolicy([{ name: 'a', exe: '/tmp/x/prog-1', dscp: 'AF11' }, { name: 'client', exe: '/opt/odd "dir"/bin: #1', dscp: 'EF' }]);
  assert.deepEqual(parse(text), { rules: [
    { name: 'a', match: { exe: '/tmp/x/prog-1' }, action: { dscp: 'AF11' } },
    { name: 'client', match: { exe: '/opt/odd "dir"/bin: #1' }, action: { dscp: 'EF' } },
  ] });
});
