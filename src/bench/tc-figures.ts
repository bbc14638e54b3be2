/* The figures of `qos bench tc` from what it measured (pure): a median with its spread, the
 * shaped flow's rate from its arrival times, and the 5-tuple of the n-th benchmark flow's filter. */

import { medianF } from './helpers.js';

/** What a link is under while iperf3 runs: no qdisc at all, the daemon's HTB with no flow, or
 * with the small or the large set of flows and filters. */
export type Condition = 'bare' | 'zero' | 'small' | 'large';

/** A figure over rounds: the median and the smallest and largest round, rounded to d decimals. */
export interface Spread { median: number; min: number; max: number }
export function spread(xs: readonly number[], d = 3): Spread {
  if (!xs.length) throw new Error('spread of nothing');
  const r = (x: number) => Math.round(x * 10 ** d) / 10 ** d;
  return { median: r(medianF([...xs])), min: r(Math.min(...xs)), max: r(Math.max(...xs)) };
}

/** Payload bits/s of datagrams of `payload` bytes that arrived at `times` (seconds, in order),
 * over those between the first and last fifth of the span: the middle 60 %, leaving out the
 * token bucket's burst at the start and the queue draining at the end. */
export function steadyRate(times: readonly number[], payload: number): number {
  if (times.length < 2) throw new Error(`${times.length} arrivals: no rate`);
  const t0 = times[0]!, t1 = times[times.length - 1]!, span = t1 - t0;
  const mid = times.filter((t) => t >= t0 + span / 5 && t <= t1 - span / 5);
  if (mid.length < 2 || mid[mid.length - 1]! === mid[0]!) throw new Error(`${mid.length} arrivals in the middle of the run: no rate`);
  return ((mid.length - 1) * payload * 8) / (mid[mid.length - 1]! - mid[0]!);
}

/** The signed error of a measured rate against the one asked for, in percent. */
export function errorPct(measured: number, wanted: number): number {
  return (measured / wanted - 1) * 100;
}

/** The exact filter of the n-th flow (n from 0): UDP from src to dst, one port pair each,
 * as a per-socket filter names them; distinct for n below 65536 x 64512. */
export function exactFilter(n: number, src: string, dst: string): { src: string; dst: string; proto: 'udp'; sport: number; dport: number } {
  if (!(Number.isInteger(n) && n >= 0 && n < 65536 * 64512)) throw new Error(`no filter number ${n}`);
  return { src, dst, proto: 'udp', sport: 1024 + (n % 64512), dport: 1 + Math.floor(n / 64512) };
}


/** The time (ms since the epoch, pino's `time`) of the first log line with message `msg` about
 * interface `dev` in the daemon's JSON log, or null if there is none yet. */
export function loggedAt(log: string, msg: string, dev: string): number | null {
  for (const line of log.split('\n')) {
    if (!line.includes(msg)) continue;
    try {
      const o = JSON.parse(line) as { msg?: string; dev?: string; time?: number };
      if (o.msg === msg && o.dev === dev && typeof o.time === 'number') return o.time;
    } catch { /* not a whole JSON line (yet) */ }
  }
  return null;
}
