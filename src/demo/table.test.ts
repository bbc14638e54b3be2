import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyzeRun, type SentDatagram } from './analyze.js';
import { DEMO_DEFAULTS, type DemoResult, type RunResult } from './demo.js';
import type { ReservationFigures } from './reservation.js';
import { demoTable, formatDemo } from './table.js';

/** 100 datagrams, 40 ms apart, a burst over the middle; lossy loses every one sent in it. */
function run(tos: number, lossy: boolean, extra: Partial<RunResult> = {}): RunResult {
  const sent: SentDatagram[] = [], received = new Map<string, number>();
  for (let i = 0; i < 100; i++) {
    sent.push({ key: `k${i}`, tUs: i * 40_000, tos, bytes: 1200, family: 4 });
    if (!lossy || i < 25 || i >= 75) received.set(`k${i}`, i * 40_000 + 100);
  }
  const f = analyzeRun({ startUs: 0, endUs: 4_000_000, sent, received, cross: [], bursts: [{ on: 1_000_000, off: 3_000_000 }], synUs: null, synAckUs: null, synTos: null, classes: [], binUs: 2_000_000 });
  return { ...f, daemon: tos !== 0, app_report: null, router_drops: [7, 0, 0, 0, 0, 0, 0, 0], router_bytes: new Array<number>(8).fill(0), ...extra };
}

const reservation = (o: Partial<ReservationFigures> = {}): ReservationFigures => ({
  flowspec: { TokenRate: 82_049, TokenBucketSize: 12_894, MaxSduSize: 1200 }, receivers_ms_after_media_start: 49.3, notifications: [],
  router: { best_effort_queue: 100, installed: true, ifname: 'snk0', rate_Bps: 82_049, refused: null, events: [] }, datagrams_before_mark: 10, datagrams_marked: 90, ...o,
});

const setup = { ...DEMO_DEFAULTS, topology: {} };
const twoRuns: DemoResult = { setup, runs: { unmarked: run(0, true), marked: run(184, false) } };

test('without --reserve the table is the two runs, by precedence, with no reservation rows', () => {
  const t = demoTable(twoRuns);
  assert.deepEqual(t.head, ['', 'without daemon', 'with qos daemon']);
  assert.ok(t.rows.some((r) => r[0] === 'router drops by precedence' && r[1] === 'p0:7'));
  assert.ok(!t.rows.some((r) => /Resv|reserv/.test(r[0]!)));
  assert.doesNotMatch(t.title, /rsvp/);
  assert.doesNotMatch(t.conclusion!, /RSVP/);
});

test('with a reserved run: its column, its rows (\'-\' in the others), drops by the RSVP router\'s classes, a sentence of its own', () => {
  const reserved = run(96, false, { router_classes: ['best effort', 'reserved', 'demoted'], router_drops: [59_261, 0, 0], reservation: reservation() });
  const t = demoTable({ setup, runs: { ...twoRuns.runs, reserved } });
  assert.deepEqual(t.head, ['', 'without daemon', 'with qos daemon', 'RSVP reservation']);
  const row = (label: string) => t.rows.find((r) => r[0] === label);
  assert.deepEqual(row('router drops by class'), ['router drops by class', 'p0:7', 'p0:7', 'best effort:59261']);
  assert.deepEqual(row('reserved (Controlled Load)'), ['reserved (Controlled Load)', '-', '-', '656 kb/s, bucket 12894 B, max 1200 B']);
  assert.deepEqual(row('Resv at the source (RECEIVERS)'), ['Resv at the source (RECEIVERS)', '-', '-', '49.3 ms after the media began']);
  assert.deepEqual(row('router reservation'), ['router reservation', '-', '-', 'installed on snk0, 656 kb/s']);
  assert.deepEqual(row('media datagrams best effort'), ['media datagrams best effort', '-', '-', '10 before the Resv']);
  assert.match(t.title, /in the reserved run by qos rsvp router/);
  assert.match(t.conclusion!, /With an RSVP reservation \(the Resv came 49\.3 ms after the media began\), media loss during bursts was 0\.00 % \(best effort: 100\.0 %\)/);
  assert.match(formatDemo({ setup, runs: { ...twoRuns.runs, reserved } }), /RSVP reservation/);
});

test('a refused reservation says so: never marked, the router\'s reason, best effort\'s loss', () => {
  const refused = reservation({ receivers_ms_after_media_start: null, datagrams_before_mark: 100, datagrams_marked: 0, router: { best_effort_queue: 100, installed: false, ifname: null, rate_Bps: null, refused: 'snk0: 82012 bytes/s more than the 78750 reservable is free', events: [] } });
  const reserved = run(0, true, { router_classes: ['best effort', 'reserved', 'demoted'], reservation: refused });
  const t = demoTable({ setup, runs: { ...twoRuns.runs, reserved } });
  const cell = (label: string) => t.rows.find((r) => r[0] === label)![3];
  assert.equal(cell('Resv at the source (RECEIVERS)'), 'never');
  assert.equal(cell('router reservation'), 'not installed: snk0: 82012 bytes/s more than the 78750 reservable is free');
  assert.equal(cell('media datagrams best effort'), 'all 100, never marked');
  assert.match(t.conclusion!, /No reservation reached the source \(the router refused it: snk0: .*\): the media stayed best effort and lost 100\.0 % during bursts\./);
});
