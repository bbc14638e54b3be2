import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bucketByDefinition } from '../characterize/lbap.js';
import { parsePolicy } from '../policy/load.js';
import { datagramsOf, MEDIA_MAX_PAYLOAD, mediaSchedule } from './media-model.js';
import { bestEffortLimit, BUCKET_FLOOR_PACKETS, IPERF_DATAGRAM, RATE_MARGIN, reservationFigures, reserveFlowspec, reservePolicy, rsvpClassCounters, type Notification } from './reservation.js';

test('the media is split into datagrams of at most its largest payload, never below its header', () => {
  assert.deepEqual(datagramsOf(2500), [1200, 1200, 100]);
  assert.deepEqual(datagramsOf(1200), [1200]);
  assert.deepEqual(datagramsOf(7), [20]);
});

test('the media schedule averages the rate asked for, and repeats for the same seed', () => {
  const s = mediaSchedule({ kbps: 400, fps: 25, seed: 1 }, 20);
  const kbps = (s.reduce((a, d) => a + d.bytes, 0) * 8) / 20 / 1000;
  assert.ok(kbps > 380 && kbps < 420, `${kbps} kb/s`);
  assert.deepEqual(mediaSchedule({ kbps: 400, fps: 25, seed: 1 }, 2), s.filter((d) => d.t < 2));
  assert.ok(s.every((d) => d.bytes <= MEDIA_MAX_PAYLOAD));
});

test('the reserved FLOWSPEC holds the media as the policers count it: every packet as MaxSduSize plus headers', () => {
  for (const family of [4, 6] as const) {
    const f = reserveFlowspec({ app: 'media', kbps: 400, fps: 25, family, durationS: 18 });
    assert.equal(f.MaxSduSize, MEDIA_MAX_PAYLOAD);
    const packet = MEDIA_MAX_PAYLOAD + (family === 4 ? 28 : 48);
    const s = mediaSchedule({ kbps: 400, fps: 25, seed: 1 }, 18);
    const counted = (s.length * packet) / (s[s.length - 1]!.t - s[0]!.t);
    // above the nominal 400 kb/s: a frame's last datagram counts whole
    assert.ok(f.TokenRate >= RATE_MARGIN * counted - 1 && f.TokenRate > 50_000, `TokenRate ${f.TokenRate} for ${counted} B/s counted`);
    const need = bucketByDefinition(s.map((d) => d.t), s.map(() => packet), f.TokenRate);
    assert.ok(f.TokenBucketSize >= need, `bucket ${f.TokenBucketSize} below the ${need} the schedule needs`);
  }
  const small = reserveFlowspec({ app: 'media', kbps: 100, fps: 25, family: 4, durationS: 10 });
  const big = reserveFlowspec({ app: 'media', kbps: 2000, fps: 25, family: 4, durationS: 10 });
  assert.ok(small.TokenRate < big.TokenRate && small.TokenBucketSize < big.TokenBucketSize, 'it follows the media rate');
});

test('iperf3: its datagram size, its rate with the margin, a bucket of a few datagrams', () => {
  const f = reserveFlowspec({ app: 'iperf3', kbps: 400, fps: 25, family: 4, durationS: 10 });
  assert.equal(f.MaxSduSize, IPERF_DATAGRAM);
  const counted = (400_000 / 8 / IPERF_DATAGRAM) * (IPERF_DATAGRAM + 28);
  assert.ok(Math.abs(f.TokenRate - RATE_MARGIN * counted) / counted < 0.02, `${f.TokenRate}`);
  assert.equal(f.TokenBucketSize, BUCKET_FLOOR_PACKETS * (IPERF_DATAGRAM + 28));
});

test('the policy is a valid policy reserving the media source\'s datagram socket', () => {
  for (const app of ['media', 'iperf3'] as const) {
    const f = reserveFlowspec({ app, kbps: 400, fps: 25, family: 4, durationS: 10 });
    const doc = parsePolicy(reservePolicy(app, 5004, f));
    const rule = doc.rules[0]!;
    assert.deepEqual(rule.match.proto, 'udp');
    assert.equal(rule.match.remote_port, 5004);
    assert.match(JSON.stringify(rule.action), new RegExp(`"TokenRate":${f.TokenRate}\\b`));
  }
});

test('the RSVP router\'s classes from tc: best effort, the reservations summed, demoted and discarded', () => {
  const json = JSON.stringify([
    { kind: 'htb', handle: 'd5c:', root: true, bytes: 999, drops: 9 },
    { kind: 'pfifo', handle: '0:', parent: 'd5c:2', options: { limit: 100 }, bytes: 1000, drops: 50 },
    { kind: 'pfifo', handle: '0:', parent: 'd5c:3', bytes: 30, drops: 3 },
    { kind: 'pfifo', handle: '0:', parent: 'd5c:4', bytes: 0, drops: 4 },
    { kind: 'pfifo', handle: '0:', parent: 'd5c:11', bytes: 200, drops: 0 },
    { kind: 'pfifo', handle: '0:', parent: 'd5c:1a', bytes: 300, drops: 1 },
    { kind: 'pfifo', handle: '10:', parent: '1:10', bytes: 5, drops: 5 },
  ]);
  assert.deepEqual(rsvpClassCounters(json), { bytes: [1000, 500, 30], drops: [50, 1, 7] });
  assert.equal(bestEffortLimit(json), 100);
  assert.equal(bestEffortLimit('[]'), null);
  assert.throws(() => rsvpClassCounters('{}'));
});

test('the reserved run\'s figures: RECEIVERS after the media began, the router\'s reservation, datagrams before the mark', () => {
  const t0 = Date.parse('2026-11-29T07:00:00.000Z') * 1000;
  const note = (seq: number, code: string, ms: number, port = 5004, role = 'sender'): Notification => ({ seq, code, at: new Date((t0 + ms * 1000) / 1000).toISOString(), role, session: { destination: '10.91.3.2', port, protocol: 17 }, program: null, reason: code });
  const flowspec = { TokenRate: 82_000, TokenBucketSize: 12_000, MaxSduSize: 1200 };
  const sent = [0, 0, 0, 24 << 2, 24 << 2].map((tos, i) => ({ tUs: t0 + 20_000 * i, tos }));
  const f = reservationFigures({
    flowspec, bestEffortQueue: 100, bottleneck: 'snk0', port: 5004, sent,
    notes: [note(1, 'SENDERS', 1, 5004, 'receiver'), note(2, 'RECEIVERS', 57), note(3, 'RECEIVERS', 80, 6000), note(4, 'NO_RECEIVERS', 9000)],
    router: [{ kind: 'ready' }, { kind: 'installed', key: 'k', ifname: 'src0', rate: 1 }, { kind: 'installed', key: 'k', ifname: 'snk0', rate: 82_000 }],
  });
  assert.equal(f.receivers_ms_after_media_start, 57);
  assert.deepEqual(f.notifications.map((n) => n.code), ['RECEIVERS', 'NO_RECEIVERS']);
  assert.deepEqual({ ...f.router, events: f.router.events.length }, { best_effort_queue: 100, installed: true, ifname: 'snk0', rate_Bps: 82_000, refused: null, events: 2 });
  assert.equal(f.datagrams_before_mark, 3);
  assert.equal(f.datagrams_marked, 2);

  const refused = reservationFigures({ flowspec, bestEffortQueue: null, bottleneck: 'snk0', port: 5004, sent: sent.slice(0, 3), notes: [], router: [{ kind: 'refused', key: 'k', ifname: 'snk0', reason: 'over the link\'s share' }] });
  assert.equal(refused.receivers_ms_after_media_start, null);
  assert.equal(refused.router.installed, false);
  assert.equal(refused.router.refused, 'over the link\'s share');
  assert.equal(refused.datagrams_before_mark, 3);
});
