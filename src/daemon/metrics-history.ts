/* The last hour of the daemon's figures, for the dashboard's Metrics page: every interval
 * (10 s unless `--metrics-interval`), on the daemon's clock, one sample of the rates since the
 * one before (decisions, script calls and faults, packets and bytes per DSCP from the
 * kernel's counters) and the request latency's p50 and p99 over the interval, kept in a fixed
 * ring of HISTORY_SAMPLES. Everything is read from counters the daemon keeps anyway: nothing
 * here runs per decision or per packet. GET /v1/metrics/history[?since=ISO]. */

import type { Clock, Timer } from '../clock.js';
import type { Component, Route } from '../component.js';
import { QosError } from '../errors.js';
import type { Counter } from '../kernel/backend.js';
import { dscpName } from '../policy/dscp.js';
import type { DscpRate, HistoryAnswer, HistorySample } from './history-sample.js';

export type { DscpRate, HistorySample } from './history-sample.js';

/** Samples kept: an hour at the default interval. */
export const HISTORY_SAMPLES = 360;
export const DEFAULT_INTERVAL_MS = 10_000;

/** A latency histogram as counted so far: upper bounds (seconds) and counts per bucket, the
 * last past every bound. */
export interface HistogramCounts { bounds: readonly number[]; counts: ArrayLike<number> }

/** Where the figures come from: totals since start, read once per interval. */
export interface HistorySources {
  /** decisions recorded (asked and cached) */
  decisions(): number;
  /** the request latency histogram (metrics.ts: qosd_request_duration_seconds) */
  latency(): HistogramCounts;
  /** script handler calls, and those of them that faulted (metrics.ts scriptTotals) */
  scripts(): { calls: number; faults: number };
  /** packets and bytes per DSCP the kernel counted; null (or absent): no kernel counters */
  dscp?(): Promise<Map<number, Counter> | null>;
}

export interface HistoryOptions {
  sources: HistorySources;
  clock: Clock;
  /** wall-clock time in ms since the epoch, for each sample's t (default Date.now) */
  wall?: () => number;
  intervalMs?: number;
  capacity?: number;
  /** a kernel read failed (logged by the owner; that sample's dscp is null) */
  onDscpError?(e: unknown): void;
}

/** What the counters said at one time. */
interface Reading {
  at: number;
  decisions: number;
  latency: number[];
  calls: number;
  faults: number;
}

/** A quantile of the observations counted in `counts` (per bucket, the last past every
 * bound), in the unit of `bounds`: linear within the bucket it falls in, as Prometheus'
 * histogram_quantile does; past the last bound, that bound. null with no observation. */
export function quantile(q: number, bounds: readonly number[], counts: readonly number[]): number | null {
  let total = 0;
  for (const c of counts) total += c;
  if (total === 0) return null;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    if (c > 0 && below + c >= rank) {
      if (i >= bounds.length) return bounds[bounds.length - 1]!;
      const lo = i === 0 ? 0 : bounds[i - 1]!, hi = bounds[i]!;
      return lo + (hi - lo) * ((rank - below) / c);
    }
    below += c;
  }
  return bounds[bounds.length - 1]!;
}

const round = (v: number, places: number) => Math.round(v * 10 ** places) / 10 ** places;

export class MetricsHistory implements Component {
  readonly name = 'metrics-history';
  readonly intervalMs: number;
  private readonly capacity: number;
  private readonly ring: HistorySample[] = [];
  /** samples taken so far; sample i is at ring[i % capacity] */
  private taken = 0;
  private last: Reading | null = null;
  private lastDscp: { at: number; counts: Map<number, Counter> } | null = null;
  private timer: Timer | null = null;
  private busy: Promise<void> | null = null;
  private readonly wall: () => number;
  /** the last kernel read failed (a failure is reported once, not every interval) */
  private failing = false;

  constructor(private readonly o: HistoryOptions) {
    this.intervalMs = o.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.capacity = o.capacity ?? HISTORY_SAMPLES;
    this.wall = o.wall ?? Date.now;
  }

  async start(): Promise<void> {
    this.last = this.read();
    await this.readDscp();
    this.timer = this.o.clock.every(this.intervalMs, () => { void this.tick(); });
  }

  async stop(): Promise<void> {
    this.timer?.cancel();
    this.timer = null;
    await this.busy;
  }

  /** Settles once the sample being taken (if any) is in the ring. */
  idle(): Promise<void> {
    return this.busy ?? Promise.resolve();
  }

  /** The time until the next sample is due, in ms (for the page's empty state). */
  get nextInMs(): number {
    if (!this.last) return this.intervalMs;
    return Math.max(0, this.last.at + this.intervalMs - this.o.clock.now());
  }

  /** The samples kept, oldest first; with `since` (ms since the epoch), those after it. */
  samples(since?: number): HistorySample[] {
    const n = Math.min(this.taken, this.capacity);
    const out: HistorySample[] = [];
    for (let i = this.taken - n; i < this.taken; i++) {
      const s = this.ring[i % this.capacity]!;
      if (since === undefined || Date.parse(s.t) > since) out.push(s);
    }
    return out;
  }

  status(): Record<string, unknown> {
    return { metrics_history: { interval_s: this.intervalMs / 1000, samples: Math.min(this.taken, this.capacity) } };
  }

  readonly routes: readonly Route[] = [{
    method: 'GET', path: '/v1/metrics/history',
    handle: ({ url }) => {
      const s = url.searchParams.get('since');
      let since: number | undefined;
      if (s !== null) {
        since = Date.parse(s);
        if (!/^\d{4}-\d\d-\d\dT/.test(s) || Number.isNaN(since)) throw new QosError('QOS_ERR_USAGE', `since must be an ISO 8601 time (2026-01-31T12:00:00.000Z), not "${s.slice(0, 64)}"`);
      }
      return { json: { interval_s: this.intervalMs / 1000, next_sample_in_s: round(this.nextInMs / 1000, 1), samples: this.samples(since) } satisfies HistoryAnswer };
    },
  }];

  private read(): Reading {
    const { sources, clock } = this.o;
    const h = sources.latency();
    const s = sources.scripts();
    return { at: clock.now(), decisions: sources.decisions(), latency: Array.from(h.counts), calls: s.calls, faults: s.faults };
  }

  /** Takes one sample (the timer's; a test may call it). A sample still waiting on the kernel
   * makes this one skip: the next covers both intervals, its rates over the time they took. */
  tick(): Promise<void> {
    if (this.busy) return this.busy;
    this.busy = this.take().finally(() => { this.busy = null; });
    return this.busy;
  }

  private async take(): Promise<void> {
    const prev = this.last!;
    const now = this.read();
    const t = new Date(this.wall()).toISOString();
    const secs = (now.at - prev.at) / 1000;
    if (!(secs > 0)) return;
    const bounds = this.o.sources.latency().bounds;
    const delta = now.latency.map((c, i) => c - (prev.latency[i] ?? 0));
    const p50 = quantile(0.5, bounds, delta), p99 = quantile(0.99, bounds, delta);
    const dscp = await this.dscpRates();
    this.last = now;
    const sample: HistorySample = {
      t,
      decisions_per_s: round((now.decisions - prev.decisions) / secs, 3),
      latency_p50_us: p50 === null ? null : round(p50 * 1e6, 1),
      latency_p99_us: p99 === null ? null : round(p99 * 1e6, 1),
      script_calls_per_s: round((now.calls - prev.calls) / secs, 3),
      script_faults_per_s: round((now.faults - prev.faults) / secs, 3),
      dscp,
    };
    this.ring[this.taken % this.capacity] = sample;
    this.taken++;
  }

  /** Reads the kernel's counters; true if they could be read. */
  private async readDscp(): Promise<boolean> {
    if (!this.o.sources.dscp) return false;
    try {
      const counts = await this.o.sources.dscp();
      if (!counts) { this.lastDscp = null; return false; }
      this.lastDscp = { at: this.o.clock.now(), counts };
      this.failing = false;
      return true;
    } catch (e) {
      if (!this.failing) this.o.onDscpError?.(e);
      this.failing = true;
      return false;
    }
  }

  /** Rates per class since the last read, over the time between the two reads. A class whose
   * counter went back (the table made anew) counts from zero. */
  private async dscpRates(): Promise<Record<string, DscpRate> | null> {
    const before = this.lastDscp;
    if (!(await this.readDscp()) || !before) return null;
    const after = this.lastDscp!;
    const secs = (after.at - before.at) / 1000;
    if (!(secs > 0)) return null;
    const out: Record<string, DscpRate> = {};
    for (const [d, c] of [...after.counts].sort((a, b) => a[0] - b[0])) {
      const p = before.counts.get(d);
      const back = p !== undefined && (c.packets < p.packets || c.bytes < p.bytes);
      const dp = back || !p ? c.packets : c.packets - p.packets;
      const db = back || !p ? c.bytes : c.bytes - p.bytes;
      out[dscpName(d).toLowerCase()] = { packets_per_s: round(dp / secs, 3), bytes_per_s: round(db / secs, 3) };
    }
    return out;
  }
}
