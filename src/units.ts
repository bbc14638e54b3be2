/* Quantities as people write them: rates (1.5Mbit, 200kB), sizes (1500, 64KiB) and durations
 * (20ms, 250us). One parser per kind, shared by `qos characterize`, the CLI's options and the
 * FLOWSPEC model (docs/flowspec.md, "Units"); each throws QOS_ERR_USAGE quoting the text. */

import { QosError } from './errors.js';

const NUMBER = '([0-9]*\\.?[0-9]+(?:e[+-]?[0-9]+)?)';

/** A rate in bytes per second: bare bytes per second, or with a unit: bit, kbit, Mbit, Gbit
 * (bits per second, powers of 1000) or B, kB, MB, GB (bytes per second); "/s" may follow. */
export function parseRate(text: string): number {
  const m = new RegExp(`^\\s*${NUMBER}\\s*(bit|kbit|Mbit|Gbit|B|kB|MB|GB)?(?:/s)?\\s*$`).exec(text);
  if (!m) throw new QosError('QOS_ERR_USAGE', `rate "${text}": a number of bytes per second, or with a unit (bit, kbit, Mbit, Gbit; B, kB, MB, GB), e.g. 1.5Mbit`);
  const k: Record<string, number> = { bit: 1 / 8, kbit: 125, Mbit: 125e3, Gbit: 125e6, B: 1, kB: 1e3, MB: 1e6, GB: 1e9 };
  return Number(m[1]) * (m[2] ? k[m[2]]! : 1);
}

/** A size in bytes: bare bytes, or B, kB, MB, GB (powers of 1000) or KiB, MiB, GiB (of 1024). */
export function parseSize(text: string): number {
  const m = new RegExp(`^\\s*${NUMBER}\\s*(B|kB|MB|GB|KiB|MiB|GiB)?\\s*$`).exec(text);
  if (!m) throw new QosError('QOS_ERR_USAGE', `size "${text}": a number of bytes, or with a unit (B, kB, MB, GB; KiB, MiB, GiB), e.g. 1500 or 64KiB`);
  const k: Record<string, number> = { B: 1, kB: 1e3, MB: 1e6, GB: 1e9, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };
  return Number(m[1]) * (m[2] ? k[m[2]]! : 1);
}

/** A duration in microseconds: us (or µs), ms, s or m; a bare number is in `bare` (the unit
 * the caller's field is kept in: microseconds for a FLOWSPEC's Latency, seconds for a CLI time).
 * Kept in microseconds so that "20ms" is exactly 20000, with no binary fraction of a second. */
export function parseDurationUs(text: string, bare: 'us' | 's'): number {
  const m = new RegExp(`^\\s*${NUMBER}\\s*(us|µs|ms|s|m)?\\s*$`).exec(text);
  if (!m) throw new QosError('QOS_ERR_USAGE', `duration "${text}": a number${bare === 'us' ? ' of microseconds' : ' of seconds'}, or with a unit (us, ms, s, m), e.g. 20ms`);
  const k: Record<string, number> = { us: 1, µs: 1, ms: 1e3, s: 1e6, m: 60e6 };
  return Number(m[1]) * k[m[2] ?? bare]!;
}
