/* A FLOWSPEC as users write it: each rule refused with the field and the rule named, and kept
 * when met; units and spellings as people write them; every problem reported at once. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QosError } from '../errors.js';
import { MAX_FIELD_VALUE, QOS_NOT_SPECIFIED } from './model.js';
import { parseFlowSpec } from './parse.js';
import { templateNamed } from './templates.js';

/** The problems parseFlowSpec reports for an input (it must refuse it). */
function problems(input: unknown, base?: Parameters<typeof parseFlowSpec>[1]): { path: string; message: string }[] {
  try {
    parseFlowSpec(input, base);
  } catch (e) {
    assert.ok(e instanceof QosError);
    assert.equal(e.code, 'QOS_ERR_USAGE');
    for (const p of e.problems) assert.ok(e.message.includes(`${p.path}: ${p.message}`), 'the message has every problem, with its field');
    return e.problems.map((p) => ({ path: p.path!, message: p.message }));
  }
  assert.fail(`accepted ${JSON.stringify(input)}`);
}

test('PeakBandwidth below TokenRate is refused; equal is kept', () => {
  const [p, ...rest] = problems({ TokenRate: '1Mbit', PeakBandwidth: '500kbit' });
  assert.equal(rest.length, 0);
  assert.equal(p!.path, 'PeakBandwidth');
  assert.match(p!.message, /62500 bytes\/s is below TokenRate \(125000 bytes\/s\): PeakBandwidth must be at least TokenRate/);
  assert.equal(parseFlowSpec({ TokenRate: '1Mbit', PeakBandwidth: '125kB' }).PeakBandwidth, 125_000);
});

test('a bucket smaller than MaxSduSize is refused; equal is kept', () => {
  assert.deepEqual(problems({ TokenBucketSize: 1000, MaxSduSize: 1500 }).map((p) => p.path), ['TokenBucketSize']);
  assert.match(problems({ TokenBucketSize: 1000, MaxSduSize: 1500 })[0]!.message, /below MaxSduSize \(1500 bytes\): a packet larger than the bucket can never conform/);
  assert.equal(parseFlowSpec({ TokenBucketSize: 1500, MaxSduSize: 1500 }).TokenBucketSize, 1500);
});

test('MinimumPolicedSize above MaxSduSize is refused; equal is kept', () => {
  const [p] = problems({ MinimumPolicedSize: 1600, MaxSduSize: 1500 });
  assert.equal(p!.path, 'MinimumPolicedSize');
  assert.match(p!.message, /1600 bytes is above MaxSduSize \(1500 bytes\)/);
  assert.equal(parseFlowSpec({ MinimumPolicedSize: 1500, MaxSduSize: 1500 }).MinimumPolicedSize, 1500);
});

test('a zero rate, bucket or size is refused; a zero Latency is kept', () => {
  for (const f of ['TokenRate', 'TokenBucketSize', 'PeakBandwidth', 'MaxSduSize', 'MinimumPolicedSize']) {
    const [p] = problems({ [f]: 0 });
    assert.equal(p!.path, f);
    assert.match(p!.message, /must be above 0/);
  }
  assert.equal(parseFlowSpec({ Latency: 0, DelayVariation: 0 }).Latency, 0);
});

test('ControlledLoad and Guaranteed need a token bucket; given one they are kept', () => {
  for (const t of ['controlled-load', 'Guaranteed']) {
    const ps = problems({ ServiceType: t });
    assert.deepEqual(ps.map((p) => p.path), ['TokenRate', 'TokenBucketSize']);
    assert.match(ps[0]!.message, /needs a TokenRate/);
  }
  const s = parseFlowSpec({ ServiceType: 'controlled-load', TokenRate: '64kbit', TokenBucketSize: '2kB' });
  assert.deepEqual([s.ServiceType, s.TokenRate, s.TokenBucketSize], ['ControlledLoad', 8000, 2000]);
  // Qualitative and BestEffort may leave everything to the default (seed 002)
  assert.equal(parseFlowSpec({ ServiceType: 'qualitative' }).TokenRate, null);
});

test('NoTraffic with a rate, bucket or peak is refused; alone it is kept', () => {
  const ps = problems({ ServiceType: 'NoTraffic', TokenRate: 100, PeakBandwidth: 200 });
  assert.deepEqual(ps.map((p) => p.path), ['TokenRate', 'PeakBandwidth']);
  assert.match(ps[0]!.message, /NoTraffic means no data in this direction/);
  assert.equal(parseFlowSpec({ ServiceType: 'notraffic', MaxSduSize: 1500 }).ServiceType, 'NoTraffic');
});

test('values hold in 32 bits below QOS_NOT_SPECIFIED, which means not specified', () => {
  const [p] = problems({ TokenBucketSize: 2 ** 32 });
  assert.equal(p!.path, 'TokenBucketSize');
  assert.match(p!.message, /more than a FLOWSPEC field holds \(4294967294/);
  assert.equal(parseFlowSpec({ TokenBucketSize: MAX_FIELD_VALUE }).TokenBucketSize, MAX_FIELD_VALUE);
  for (const v of [QOS_NOT_SPECIFIED, null, 'not-specified', 'QOS_NOT_SPECIFIED', '0xFFFFFFFF']) {
    assert.equal(parseFlowSpec({ PeakBandwidth: v }).PeakBandwidth, null, String(v));
  }
  assert.match(problems({ TokenRate: -5 })[0]!.message, /0 or more/);
  assert.match(problems({ TokenRate: true })[0]!.message, /true is not a number of bytes\/s/);
});

test('units: rates in bytes/s, sizes in bytes, times in microseconds, rounded up to a whole unit', () => {
  // 16.12 kbit/s is 2015.0000000000002 in binary arithmetic: still 2015, not 2016
  const s = parseFlowSpec({ TokenRate: '16.12kbit', PeakBandwidth: '1.5Mbit', TokenBucketSize: '2KiB', MaxSduSize: '1.5kB', MinimumPolicedSize: 64, Latency: '20ms', DelayVariation: '150' });
  assert.deepEqual(s, { TokenRate: 2015, TokenBucketSize: 2048, PeakBandwidth: 187_500, Latency: 20_000, DelayVariation: 150, ServiceType: 'NotSpecified', MaxSduSize: 1500, MinimumPolicedSize: 64 });
  // 5.3 kbit/s is 662.5 bytes/s: a reservation is never below what was written
  assert.equal(parseFlowSpec({ TokenRate: '5.3kbit' }).TokenRate, 663);
  assert.equal(parseFlowSpec({ Latency: '1.5us' }).Latency, 2);
});

test('a value in the wrong kind of unit names its field and the units it takes', () => {
  const ps = problems({ TokenRate: '20ms', Latency: '1Mbit', MaxSduSize: '1kbit' });
  assert.deepEqual(ps.map((p) => p.path), ['TokenRate', 'Latency', 'MaxSduSize'], 'every problem at once');
  assert.match(ps[0]!.message, /rate "20ms": a number of bytes per second/);
  assert.match(ps[1]!.message, /duration "1Mbit": a number of microseconds/);
  assert.match(ps[2]!.message, /size "1kbit"/);
});

test('field names in the seed\'s spelling, snake or kebab case and the CLI\'s short forms; others refused', () => {
  const s = parseFlowSpec({ token_rate: 100, 'token-bucket-size': 200, peak: 300, jitter: '1ms', service_type: 'best-effort', max_sdu: 200, minPoliced: 50 });
  assert.deepEqual([s.TokenRate, s.TokenBucketSize, s.PeakBandwidth, s.DelayVariation, s.ServiceType, s.MaxSduSize, s.MinimumPolicedSize], [100, 200, 300, 1000, 'BestEffort', 200, 50]);
  const [p] = problems({ TokenRate: 1, colour: 'red' });
  assert.equal(p!.path, 'colour');
  assert.match(p!.message, /unknown field; a FLOWSPEC has TokenRate, TokenBucketSize/);
});

test('service types: the seed\'s names in any case, SERVICETYPE_*, kebab and snake forms, Windows\' numbers', () => {
  const cases: [unknown, string][] = [['GUARANTEED', 'Guaranteed'], ['SERVICETYPE_CONTROLLEDLOAD', 'ControlledLoad'], ['controlled_load', 'ControlledLoad'],
    ['network-control', 'NetworkControl'], ['SERVICETYPE_NETWORK_CONTROL', 'NetworkControl'], ['Qualitative', 'Qualitative'], ['not specified', 'NotSpecified'], [13, 'Qualitative'], [1, 'BestEffort']];
  for (const [v, t] of cases) assert.equal(parseFlowSpec({ ServiceType: v, TokenRate: 1, TokenBucketSize: 1 }).ServiceType, t, String(v));
  const [p] = problems({ ServiceType: 'gold' });
  assert.equal(p!.path, 'ServiceType');
  assert.match(p!.message, /"gold" is not a service type: BestEffort, ControlledLoad, Guaranteed, Qualitative, NetworkControl, NoTraffic, NotSpecified/);
});

test('over a template, the fields given replace its own and the rules hold on the result', () => {
  const g711 = templateNamed('G711').spec;
  const s = parseFlowSpec({ Latency: '40ms' }, { base: g711 });
  assert.deepEqual(s, { ...g711, Latency: 40_000 });
  // G711's PeakBandwidth is its TokenRate (8600): a higher TokenRate alone breaks the peak rule
  assert.deepEqual(problems({ TokenRate: 9000 }, { base: g711 }).map((p) => p.path), ['PeakBandwidth']);
  assert.equal(parseFlowSpec({ TokenRate: 9000, PeakBandwidth: 'not-specified' }, { base: g711 }).PeakBandwidth, null);
  assert.equal(g711.TokenRate, 8600, 'the template itself is unchanged');
});

test('problems are placed under the caller\'s path; a non-object is refused', () => {
  assert.deepEqual(problems({ TokenRate: 0 }, { path: 'rules[2].action.flowspec' }).map((p) => p.path), ['rules[2].action.flowspec.TokenRate']);
  assert.throws(() => parseFlowSpec('G711'), /a FLOWSPEC is an object of fields/);
  assert.throws(() => parseFlowSpec([1, 2]), /a FLOWSPEC is an object of fields/);
});
