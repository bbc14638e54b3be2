/* `qos rsvp bench`: what RSVP costs on this machine (docs/rsvp.md, "Benchmark").
 *
 * - decode_msgs_per_s, encode_msgs_per_s: a typical Path (SESSION, RSVP_HOP, TIME_VALUES,
 *   POLICY_DATA with a user's and an application's identity, SENDER_TEMPLATE, SENDER_TSPEC, a
 *   full ADSPEC: what a host sends for a media stream) decoded from its bytes, checksum
 *   checked, and encoded to bytes, checksum computed; each measured for a slice of time, the
 *   two alternating, over rounds: the median with min and max.
 * - router_cpu_pct_10k_sessions, router_rss_mb_10k_sessions: see router-load in benchRouter. */

import { cpus } from 'node:os';
import { decode, encode, type RsvpMessage } from '../rsvp/message.js';
import { SAMPLE_MESSAGES_V4 } from '../rsvp/samples.js';
import type { Target } from './agent.js';
import { spread, type Spread } from './tc-figures.js';

/** A typical Path: the sample one, which carries every object a sender's Path does. */
export const TYPICAL_PATH: RsvpMessage = SAMPLE_MESSAGES_V4[0]!;

/** Messages per second of fn over about ms milliseconds (whole batches of `batch`). */
function rate(fn: () => void, ms: number, batch = 1000): number {
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    for (let i = 0; i < batch; i++) fn();
    n += batch;
    t = performance.now();
  }
  return (n * 1000) / (t - t0);
}

export interface CodecRates { decode: Spread; encode: Spread; bytes: number }

/** Decoding and encoding the typical Path, in alternating slices of sliceMs over rounds. */
export function codecRates(rounds: number, sliceMs: number): CodecRates {
  const bytes = encode(TYPICAL_PATH);
  let sink = 0;
  const dec = () => { sink += decode(bytes).objects.length; };
  const enc = () => { sink += encode(TYPICAL_PATH)[3]!; };
  // a warm-up slice each, so the figures are of optimised code
  rate(dec, sliceMs); rate(enc, sliceMs);
  const d: number[] = [], e: number[] = [];
  for (let r = 0; r < rounds; r++) {
    if (r % 2) { e.push(rate(enc, sliceMs)); d.push(rate(dec, sliceMs)); } else { d.push(rate(dec, sliceMs)); e.push(rate(enc, sliceMs)); }
  }
  if (sink < 0) throw new Error('unreachable');
  return { decode: spread(d, 0), encode: spread(e, 0), bytes: bytes.length };
}

export interface RsvpBenchResult {
  decode_msgs_per_s: number;
  encode_msgs_per_s: number;
  [figure: string]: unknown;
  spread: Record<string, Spread>;
  targets: Record<string, Target>;
  setup: Record<string, unknown>;
}

export interface RsvpBenchOptions {
  rounds: number;
  sliceMs: number;
  progress?: (m: string) => void;
}

export function codecFigures(o: RsvpBenchOptions): Pick<RsvpBenchResult, 'decode_msgs_per_s' | 'encode_msgs_per_s'> & { spread: Record<string, Spread>; targets: Record<string, Target>; path_bytes: number } {
  const c = codecRates(o.rounds, o.sliceMs);
  o.progress?.(`a ${c.bytes}-byte Path: decoded ${c.decode.median}/s (${c.decode.min}-${c.decode.max}), encoded ${c.encode.median}/s (${c.encode.min}-${c.encode.max})`);
  return {
    decode_msgs_per_s: c.decode.median,
    encode_msgs_per_s: c.encode.median,
    path_bytes: c.bytes,
    spread: { decode_msgs_per_s: c.decode, encode_msgs_per_s: c.encode },
    targets: {
      decode_msgs_per_s: { value: c.decode.median, limit: 200_000, ok: c.decode.median >= 200_000 },
      encode_msgs_per_s: { value: c.encode.median, limit: 200_000, ok: c.encode.median >= 200_000 },
    },
  };
}

export const machine = () => ({ cpus: cpus().length, node: process.version });
