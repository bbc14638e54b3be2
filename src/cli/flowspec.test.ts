/* `qos flowspec` as a user runs it (the real dist/cli/main.js, no daemon): --json keyed by the
 * FLOWSPEC's fields, exit 64 with the field named for a bad FLOWSPEC or an unknown template. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { QOS_CLI } from '../daemon/child.js';

const qos = (...args: string[]) => spawnSync(process.execPath, [QOS_CLI, 'flowspec', ...args], { encoding: 'utf8' });
const FIELDS = ['TokenRate', 'TokenBucketSize', 'PeakBandwidth', 'Latency', 'DelayVariation', 'ServiceType', 'MaxSduSize', 'MinimumPolicedSize'];
const TEMPLATES = ['G711', 'G723.1', 'G729', 'GSM6.10', 'H261QCIF', 'H261CIF', 'H263QCIF', 'H263CIF'];

test('qos flowspec templates --json: every template, its FLOWSPEC keyed by field', () => {
  const r = qos('templates', '--json');
  assert.equal(r.status, 0, r.stderr);
  const ts = JSON.parse(r.stdout) as { name: string; flowspec: Record<string, unknown> }[];
  assert.deepEqual(ts.map((t) => t.name), TEMPLATES);
  for (const t of ts) assert.deepEqual(Object.keys(t.flowspec), FIELDS, t.name);
  assert.equal(ts[0]!.flowspec.TokenRate, 8600);
  assert.equal(ts[4]!.flowspec.PeakBandwidth, null, 'not specified is null');
});

test('qos flowspec templates prints a table with each template', () => {
  const r = qos('templates');
  assert.equal(r.status, 0, r.stderr);
  for (const n of TEMPLATES) assert.match(r.stdout, new RegExp(`^${n.replace('.', '\\.')} `, 'm'));
  assert.match(r.stdout, /^G729 +Guaranteed +1600 +64 +1600 +32 +32 /m);
});

test('qos flowspec show NAME --json: the FLOWSPEC in bytes/s, the actual token rate, the derivation', () => {
  const r = qos('show', 'h263cif', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { name: string; flowspec: Record<string, unknown>; actual: Record<string, unknown>; derivation: { name: string }[] };
  assert.equal(j.name, 'H263CIF');
  assert.deepEqual(j.flowspec, { TokenRate: 32490, TokenBucketSize: 1472, PeakBandwidth: null, Latency: null, DelayVariation: null, ServiceType: 'ControlledLoad', MaxSduSize: 1472, MinimumPolicedSize: 1083 });
  // 32490 x (1083 + 28) / 1083 = 30 x 1111
  assert.deepEqual(j.actual, { proto: 'udp', ipv6: false, overhead: 28, TokenRate: 33_330 });
  assert.ok(j.derivation.some((d) => d.name === 'picture'));
  const v6 = JSON.parse(qos('show', 'H263CIF', '--ipv6', '--json').stdout) as { actual: { overhead: number; TokenRate: number } };
  assert.deepEqual([v6.actual.overhead, v6.actual.TokenRate], [48, 33_930]); // 30 x 1131
});

test('qos flowspec show NAME prints each field with its unit and the derivation', () => {
  const r = qos('show', 'G711');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^TokenRate +8600 bytes\/s \(68\.8 kbit\/s\)$/m);
  assert.match(r.stdout, /^Latency +not specified$/m);
  assert.match(r.stdout, /^actual TokenRate +10000 bytes\/s \(80 kbit\/s\) \(UDP\/IPv4, 28 bytes of headers per packet\)$/m);
  assert.match(r.stdout, /^ +packet +172 +2 x 80 \+ RTP 12 bytes$/m);
});

test('an unknown template: exit 64, the known ones listed', () => {
  for (const args of [['show', 'H264'], ['check', '--template', 'H264']]) {
    const r = qos(...args);
    assert.equal(r.status, 64, args.join(' '));
    assert.equal(r.stderr, `qos: no FLOWSPEC template "H264": the templates are ${TEMPLATES.join(', ')}\n`);
    assert.equal(r.stdout, '');
  }
});

test('qos flowspec check: options over a template, the actual token rate for the framing given', () => {
  const r = qos('check', '--template', 'G711', '--latency', '40ms', '--proto', 'tcp', '--ipv6', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { ok: boolean; template: string; flowspec: Record<string, unknown>; actual: Record<string, unknown> };
  assert.equal(j.ok, true);
  assert.equal(j.template, 'G711');
  assert.equal(j.flowspec.Latency, 40_000);
  assert.equal(j.flowspec.TokenRate, 8600);
  // 8600 x (172 + 60) / 172 = 50 x 232
  assert.deepEqual(j.actual, { proto: 'tcp', ipv6: true, overhead: 60, TokenRate: 11_600 });
  const h = qos('check', '--token-rate', '64kbit', '--bucket', '2KiB', '--min-policed', '160', '--service-type', 'controlled-load');
  assert.equal(h.status, 0, h.stderr);
  assert.match(h.stdout, /^ServiceType +ControlledLoad \(SERVICETYPE_CONTROLLEDLOAD, 2\)$/m);
  assert.match(h.stdout, /^actual TokenRate +9400 bytes\/s .*\(UDP\/IPv4, 28 bytes/m);
});

test('qos flowspec check refuses a broken rule: exit 64, the field and rule named, once', () => {
  const r = qos('check', '--token-rate', '1Mbit', '--peak', '500kbit');
  assert.equal(r.status, 64);
  assert.equal(r.stderr, 'qos: invalid FLOWSPEC: PeakBandwidth: 62500 bytes/s is below TokenRate (125000 bytes/s): PeakBandwidth must be at least TokenRate (seed 002)\n');
  const j = qos('check', '--service-type', 'guaranteed', '--max-sdu', 'big', '--json');
  assert.equal(j.status, 64);
  const out = JSON.parse(j.stdout) as { ok: boolean; error: { code: string; problems: { path: string; message: string }[] } };
  assert.equal(out.ok, false);
  assert.equal(out.error.code, 'QOS_ERR_USAGE');
  assert.deepEqual(out.error.problems.map((p) => p.path), ['MaxSduSize']);
  assert.match(out.error.problems[0]!.message, /size "big"/);
  const g = qos('check', '--service-type', 'guaranteed');
  assert.equal(g.status, 64);
  assert.match(g.stderr, /TokenRate: Guaranteed needs a TokenRate/);
  assert.equal(qos('check', '--proto', 'sctp').status, 64);
});

test('qos flowspec check --help says what each value means and its unit', () => {
  const r = qos('check', '--help');
  assert.equal(r.status, 0);
  const help = r.stdout.replace(/\s+/g, ' '); // commander wraps lines at the terminal's width
  for (const s of [/--token-rate <rate> TokenRate: the average rate the application sends, bytes\/s/, /--latency <time> Latency: [^-]*microseconds/, /1\.5Mbit/, /20ms/, /"not-specified"/]) assert.match(help, s);
});
