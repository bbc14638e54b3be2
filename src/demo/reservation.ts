/* `qos demo --reserve` (pure, so it is unit-tested): what the reserved run asks for and what it
 * reads back. The FLOWSPEC its policy's `reserve` gives the media source, worked out from what
 * the source sends (media-model.ts, or iperf3's fixed datagrams at its pacing rate) the way the
 * policers count it; the policy; the RSVP router's classes on the bottleneck from `tc -s -j
 * qdisc show`; the source daemon's status notifications and the router's JSON lines made into
 * the run's `reservation` figures. docs/demo.md, "With a reservation". */

import { BucketCurve } from '../characterize/lbap.js';
import { layer3Overhead } from '../flowspec/overhead.js';
import { HANDLE_TEXT } from '../tc/plan.js';
import { MEDIA_MAX_PAYLOAD, mediaSchedule } from './media-model.js';
import type { IpFamily } from './net.js';

/** iperf3's datagram payload in the demo (`iperf3 -u -l`). */
export const IPERF_DATAGRAM = 1000;
/** The token rate is this much above the rate the policers count the source at. */
export const RATE_MARGIN = 1.25;
/** The bucket is this much above the least one the source's schedule conforms to at that rate,
 * and never below BUCKET_FLOOR_PACKETS datagrams (a sender's timing is not its schedule's). */
export const BUCKET_MARGIN = 1.5;
export const BUCKET_FLOOR_PACKETS = 4;

export interface ReserveFlowspec { TokenRate: number; TokenBucketSize: number; MaxSduSize: number }

/** The Controlled Load FLOWSPEC for the demo's media source (GQoS units: bytes/s, bytes).
 * MaxSduSize is its largest datagram payload. The policers (the sending host's and the
 * router's) count every packet as MaxSduSize plus headers, so the source's schedule is
 * measured that way: TokenRate is RATE_MARGIN times its mean rate so counted, and
 * TokenBucketSize BUCKET_MARGIN times b(TokenRate), the least bucket the schedule conforms to
 * at that rate (seed 001's LBAP, characterize/lbap.ts). */
export function reserveFlowspec(o: { app: 'media' | 'iperf3'; kbps: number; fps: number; family: IpFamily; durationS: number }): ReserveFlowspec {
  const sdu = o.app === 'media' ? MEDIA_MAX_PAYLOAD : IPERF_DATAGRAM;
  const packet = sdu + layer3Overhead({ proto: 'udp', ipv6: o.family === 6 });
  // iperf3 -b paces datagrams of one size evenly
  const times = o.app === 'media'
    ? mediaSchedule({ kbps: o.kbps, fps: o.fps, seed: 1 }, o.durationS).map((d) => d.t)
    : Array.from({ length: Math.max(1, Math.floor((o.kbps * 1000 * o.durationS) / 8 / IPERF_DATAGRAM)) }, (_, i) => (i * IPERF_DATAGRAM * 8) / (o.kbps * 1000));
  const span = Math.max(times[times.length - 1]! - times[0]!, 1 / Math.max(1, o.fps));
  const rate = Math.ceil((RATE_MARGIN * times.length * packet) / span);
  const curve = new BucketCurve(Float64Array.of(rate));
  for (const t of times) curve.add(t, packet);
  const b = curve.curve()[0]!.b_bytes;
  return { TokenRate: rate, TokenBucketSize: Math.ceil(Math.max(BUCKET_MARGIN * b, BUCKET_FLOOR_PACKETS * packet)), MaxSduSize: sdu };
}

/** The sending host's policy: the media source's datagram socket reserved with Controlled
 * Load (the daemon sends Path for it; marked CS3 once the Resv is admitted). */
export function reservePolicy(app: 'media' | 'iperf3', port: number, f: ReserveFlowspec): string {
  const match = app === 'media' ? 'cmdline: "*/media-app.js *"' : 'exe: "*iperf3*"';
  return `# qos demo --reserve: the media source's datagrams reserved (docs/demo.md, "With a reservation")
rules:
  - name: media
    match: { ${match}, proto: udp, remote_port: ${port} }
    action: { reserve: { service: controlled-load, flowspec: { TokenRate: ${f.TokenRate}, TokenBucketSize: ${f.TokenBucketSize}, MaxSduSize: ${f.MaxSduSize} } } }
`;
}

/** What the RSVP router's queues on the bottleneck are, in the order of the run's counters. */
export const RSVP_CLASSES = ['best effort', 'reserved', 'demoted'] as const;

/** Bytes sent and packets dropped so far by the RSVP router's classes on an interface, from
 * `tc -s -j qdisc show dev D`: best effort (d5c:2, its HTB default), the reservations (every
 * flow class, d5c:10 and up, summed) and demoted packets (d5c:3, a borrowing flow's excess,
 * with d5c:4, a discarding flow's). src/tc/plan.ts lays the classes out. */
export function rsvpClassCounters(json: string): { bytes: number[]; drops: number[] } {
  const out = { bytes: RSVP_CLASSES.map(() => 0), drops: RSVP_CLASSES.map(() => 0) };
  const qdiscs = JSON.parse(json) as Array<{ parent?: string; bytes?: number; drops?: number }>;
  if (!Array.isArray(qdiscs)) throw new Error('tc qdisc show: not a JSON array');
  for (const q of qdiscs) {
    if (!q.parent?.startsWith(HANDLE_TEXT)) continue;
    const minor = parseInt(q.parent.slice(HANDLE_TEXT.length), 16);
    const k = minor === 2 ? 0 : minor >= 0x10 ? 1 : minor === 3 || minor === 4 ? 2 : -1;
    if (k < 0) continue;
    out.bytes[k] = out.bytes[k]! + (q.bytes ?? 0);
    out.drops[k] = out.drops[k]! + (q.drops ?? 0);
  }
  return out;
}

/** The packets the RSVP router's best-effort class queues (its HTB default class d5c:2), from
 * `tc -j qdisc show dev D invisible`; null if it is not there. */
export function bestEffortLimit(json: string): number | null {
  const qdiscs = JSON.parse(json) as Array<{ parent?: string; options?: { limit?: number } }>;
  const q = Array.isArray(qdiscs) ? qdiscs.find((x) => x.parent === `${HANDLE_TEXT}2`) : undefined;
  return typeof q?.options?.limit === 'number' ? q.options.limit : null;
}

/** One status notification as `qos rsvp events --json` prints it (the fields read here). */
export interface Notification { seq: number; at: string; code: string; role: string | null; session: { destination: string; port: number; protocol: number }; program: { exe: string; pid: number } | null; reason: string }

/** What `qos rsvp router --json` printed (the lines read here). */
export type RouterLine = { kind: string; key?: string; ifname?: string; rate?: number; reason?: string; [k: string]: unknown };

/** The reserved run's own figures. */
export interface ReservationFigures {
  /** the FLOWSPEC the policy reserved */
  flowspec: ReserveFlowspec;
  /** RECEIVERS at the sending host (the Resv reached it), ms after the first media datagram
   * left it; null if none came */
  receivers_ms_after_media_start: number | null;
  /** the notifications at the sending host for the media's session, in order: code, ms after
   * the first media datagram, reason */
  notifications: Array<{ code: string; ms: number; reason: string }>;
  /** the router's reservation on the bottleneck: installed (its rate, bytes/s) or refused; its
   * best-effort queue's length, packets (as each precedence class's in the other runs) */
  router: { best_effort_queue: number | null; installed: boolean; ifname: string | null; rate_Bps: number | null; refused: string | null; events: RouterLine[] };
  /** media datagrams that left the source before the first one marked, and how many were marked */
  datagrams_before_mark: number;
  datagrams_marked: number;
}

/** The reserved run's figures from what the sending host's daemon and the router reported
 * and the source's capture (send times µs and DSCPs in send order). */
export function reservationFigures(o: {
  flowspec: ReserveFlowspec; bestEffortQueue: number | null; notes: Notification[]; router: RouterLine[]; bottleneck: string; port: number;
  sent: Array<{ tUs: number; tos: number }>;
}): ReservationFigures {
  const startUs = o.sent.length ? Math.min(...o.sent.map((s) => s.tUs)) : null;
  const ms = (at: string) => (startUs === null ? NaN : Math.round(Date.parse(at) * 1000 - startUs) / 1000);
  const mine = o.notes.filter((n) => n.session.port === o.port && n.role === 'sender');
  const receivers = mine.find((n) => n.code === 'RECEIVERS');
  const installed = o.router.find((e) => (e.kind === 'installed' || e.kind === 'changed') && e.ifname === o.bottleneck);
  const refused = o.router.find((e) => e.kind === 'refused' || e.kind === 'tc-error');
  const firstMarked = o.sent.findIndex((s) => s.tos >> 2 !== 0);
  return {
    flowspec: o.flowspec,
    receivers_ms_after_media_start: receivers && startUs !== null ? ms(receivers.at) : null,
    notifications: mine.map((n) => ({ code: n.code, ms: ms(n.at), reason: n.reason })),
    router: {
      best_effort_queue: o.bestEffortQueue,
      installed: installed !== undefined, ifname: installed?.ifname ?? null, rate_Bps: typeof installed?.rate === 'number' ? installed.rate : null,
      refused: refused ? String(refused.reason ?? refused.error ?? refused.kind) : null,
      events: o.router.filter((e) => e.kind !== 'ready'),
    },
    datagrams_before_mark: firstMarked < 0 ? o.sent.length : firstMarked,
    datagrams_marked: o.sent.filter((s) => s.tos >> 2 !== 0).length,
  };
}
