/* The demonstration's figures, from what was seen on the wire (pure, so it is unit-tested):
 * the media datagrams captured leaving the source and arriving at the sink (matched by the
 * start of their payload, which carries a sequence number), the cross traffic arriving at
 * the sink, the TCP handshake seen at the source, the burst times the cross-traffic
 * generator reports, and the router's per-class counters. All times are wall-clock
 * microseconds; the namespaces share one clock, so a delay is a plain difference. */

export interface SentDatagram { key: string; tUs: number; tos: number; bytes: number; family: 4 | 6 }
export interface Arrival { tUs: number; bytes: number }
export interface Burst { on: number; off: number }
export interface ClassSample { tUs: number; bytes: number[]; drops: number[] }

export interface RunTrace {
  startUs: number;
  endUs: number;
  sent: SentDatagram[];
  /** media arrivals at the sink by key */
  received: Map<string, number>;
  cross: Arrival[];
  bursts: Burst[];
  /** first SYN the source sent, first SYN-ACK it got after that */
  synUs: number | null;
  synAckUs: number | null;
  synTos: number | null;
  classes: ClassSample[];
  /** bin width of the loss-over-time series */
  binUs: number;
}

export interface PhaseFigures {
  datagrams: number;
  lost: number;
  loss_pct: number;
  delay_ms_p50: number | null;
  delay_ms_p99: number | null;
  delay_ms_max: number | null;
  jitter_ms: number | null;
}

export interface RunFigures {
  burst: PhaseFigures;
  idle: PhaseFigures;
  tcp_setup_ms: number | null;
  cross_traffic_mbps_during_burst: number;
  cross_traffic_mbps_idle: number;
  /** media datagrams seen leaving the source, by DSCP */
  media_dscp: Record<string, number>;
  /** media datagrams seen leaving the source, by IP version ("4", "6") */
  media_family: Record<string, number>;
  /** DSCP of the call-control SYN */
  control_dscp: number | null;
  series: {
    /** [seconds since start, one-way delay ms or null if lost], by send time */
    delay: Array<[number, number | null]>;
    /** [bin start s, loss %] */
    loss: Array<[number, number]>;
    loss_bin_s: number;
    /** [s, Mb/s of precedence 0..7] at the router's bottleneck */
    classes: Array<[number, number[]]>;
    /** [on s, off s] */
    bursts: Array<[number, number]>;
  };
}

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Nearest-rank percentile of sorted values (p in 0..100). */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (!sorted.length) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

/** RFC 3550 section 6.4.1 interarrival jitter: for consecutive arrivals i, j (in arrival
 * order), D = (Rj - Ri) - (Sj - Si) and J += (|D| - J) / 16. Returns J after each arrival. */
export function rfc3550Jitter(arrivals: ReadonlyArray<{ s: number; r: number }>): number[] {
  const out: number[] = [];
  let j = 0;
  for (let k = 0; k < arrivals.length; k++) {
    if (k > 0) {
      const a = arrivals[k - 1]!, b = arrivals[k]!;
      const d = (b.r - a.r) - (b.s - a.s);
      j += (Math.abs(d) - j) / 16;
    }
    out.push(j);
  }
  return out;
}

export function inBurst(bursts: readonly Burst[], t: number): boolean {
  for (const b of bursts) if (t >= b.on && t < b.off) return true;
  return false;
}

function phase(items: Array<{ sent: SentDatagram; r: number | undefined; jitterUs: number | undefined }>): PhaseFigures {
  const delays = items.filter((i) => i.r !== undefined).map((i) => (i.r! - i.sent.tUs) / 1000).sort((a, b) => a - b);
  const jit = items.map((i) => i.jitterUs).filter((j): j is number => j !== undefined);
  const lost = items.length - delays.length;
  const r = (x: number | null) => (x === null ? null : round(x));
  return {
    datagrams: items.length,
    lost,
    loss_pct: items.length ? round((100 * lost) / items.length) : 0,
    delay_ms_p50: r(percentile(delays, 50)),
    delay_ms_p99: r(percentile(delays, 99)),
    delay_ms_max: r(delays.length ? delays[delays.length - 1]! : null),
    jitter_ms: jit.length ? round(jit.reduce((a, b) => a + b, 0) / jit.length / 1000) : null,
  };
}

export function analyzeRun(t: RunTrace): RunFigures {
  const sent = [...t.sent].sort((a, b) => a.tUs - b.tUs);
  // Jitter runs over the arrivals in arrival order; each arrival's J counts for its phase.
  const arrivals = sent.filter((s) => t.received.has(s.key)).map((s) => ({ key: s.key, s: s.tUs, r: t.received.get(s.key)! })).sort((a, b) => a.r - b.r);
  const jitter = rfc3550Jitter(arrivals);
  const jitterOf = new Map(arrivals.map((a, i) => [a.key, jitter[i]!]));
  const items = sent.map((s) => ({ sent: s, r: t.received.get(s.key), jitterUs: jitterOf.get(s.key) }));
  const burstItems = items.filter((i) => inBurst(t.bursts, i.sent.tUs));
  const idleItems = items.filter((i) => !inBurst(t.bursts, i.sent.tUs));

  const burstUs = t.bursts.reduce((a, b) => a + (b.off - b.on), 0);
  const idleUs = Math.max(1, t.endUs - t.startUs - burstUs);
  let crossBurst = 0, crossIdle = 0;
  for (const c of t.cross) {
    if (inBurst(t.bursts, c.tUs)) crossBurst += c.bytes;
    else crossIdle += c.bytes;
  }
  const mbps = (bytes: number, us: number) => (us > 0 ? round((bytes * 8) / us, 3) : 0);

  const mediaDscp: Record<string, number> = {}, mediaFamily: Record<string, number> = {};
  for (const s of sent) {
    mediaDscp[String(s.tos >> 2)] = (mediaDscp[String(s.tos >> 2)] ?? 0) + 1;
    mediaFamily[String(s.family)] = (mediaFamily[String(s.family)] ?? 0) + 1;
  }

  const sec = (us: number) => round((us - t.startUs) / 1e6, 4);
  const loss: Array<[number, number]> = [];
  if (sent.length) {
    const anchor = t.bursts[0]?.on ?? t.startUs;
    const first = anchor - Math.ceil((anchor - t.startUs) / t.binUs) * t.binUs;
    const bins = new Map<number, { n: number; lost: number }>();
    for (const i of items) {
      const k = Math.floor((i.sent.tUs - first) / t.binUs);
      const b = bins.get(k) ?? { n: 0, lost: 0 };
      b.n++;
      if (i.r === undefined) b.lost++;
      bins.set(k, b);
    }
    for (const [k, b] of [...bins].sort((a, b) => a[0] - b[0])) loss.push([sec(first + k * t.binUs), round((100 * b.lost) / b.n, 2)]);
  }
  const classes: Array<[number, number[]]> = [];
  for (let k = 1; k < t.classes.length; k++) {
    const a = t.classes[k - 1]!, b = t.classes[k]!;
    const dt = b.tUs - a.tUs;
    if (dt <= 0) continue;
    classes.push([sec((a.tUs + b.tUs) / 2), b.bytes.map((x, p) => mbps(Math.max(0, x - a.bytes[p]!), dt))]);
  }

  return {
    burst: phase(burstItems),
    idle: phase(idleItems),
    tcp_setup_ms: t.synUs !== null && t.synAckUs !== null ? round((t.synAckUs - t.synUs) / 1000) : null,
    cross_traffic_mbps_during_burst: mbps(crossBurst, burstUs),
    cross_traffic_mbps_idle: mbps(crossIdle, idleUs),
    media_dscp: mediaDscp,
    media_family: mediaFamily,
    control_dscp: t.synTos === null ? null : t.synTos >> 2,
    series: {
      delay: items.map((i) => [sec(i.sent.tUs), i.r === undefined ? null : round((i.r - i.sent.tUs) / 1000)]),
      loss,
      loss_bin_s: t.binUs / 1e6,
      classes,
      bursts: t.bursts.map((b) => [sec(b.on), sec(b.off)]),
    },
  };
}
