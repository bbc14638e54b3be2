/* Quantities as people write them: rates (1.5Mbit, 200kB), sizes (1500, 64KiB) and durations
 * (20ms, 250us). One parser per kind, shared by `qos characterize`, the CLI's options and the
 * FLOWSPEC model (docs/flowspec.md, "Units"); each throws QOS_ERR_USAGE quoting the text. */

import { QosError } from './errors.js';

/** A kind of quantity: its units and their factors, and the pattern of a number with one of
 * them (then `suffix`, e.g. "/s"), compiled once. */
class Quantity {
  private readonly pattern: RegExp;
  constructor(private readonly factors: Record<string, number>, suffix = '') {
    this.pattern = new RegExp(`^\\s*([0-9]*\\.?[0-9]+(?:e[+-]?[0-9]+)?)\\s*(${Object.keys(factors).join('|')})?${suffix}\\s*$`);
  }

  /** text's value in the base unit (a bare number is in unit `bare`), or throws `problem`. */
  parse(text: string, bare: string, problem: () => string): number {
    const m = this.pattern.exec(text);
    if (!m) throw new QosError('QOS_ERR_USAGE', problem());
    return Number(m[1]) * this.factors[m[2] ?? bare]!;
  }
}

const RATE = new Quantity({ bit: 1 / 8, kbit: 125, Mbit: 125e3, Gbit: 125e6, B: 1, kB: 1e3, MB: 1e6, GB: 1e9 }, '(?:/s)?');
const SIZE = new Quantity({ B: 1, kB: 1e3, MB: 1e6, GB: 1e9, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 });
const DURATION = new Quantity({ us: 1, µs: 1, ms: 1e3, s: 1e6, m: 60e6 });

/** A rate in bytes per second: bare bytes per second, or with a unit: bit, kbit, Mbit, Gbit
 * (bits per second, powers of 1000) or B, kB, MB, GB (bytes per second); "/s" may follow. */
export function parseRate(text: string): number {
  return RATE.parse(text, 'B', () => `rate "${text}": a number of bytes per second, or with a unit (bit, kbit, Mbit, Gbit; B, kB, MB, GB), e.g. 1.5Mbit`);
}

/** A size in bytes: bare bytes, or B, kB, MB, GB (powers of 1000) or KiB, MiB, GiB (of 1024). */
export function parseSize(text: string): number {
  return SIZE.parse(text, 'B', () => `size "${text}": a number of bytes, or with a unit (B, kB, MB, GB; KiB, MiB, GiB), e.g. 1500 or 64KiB`);
}

/** A duration in microseconds: us (or µs), ms, s or m; a bare number is in `bare` (the unit
 * the caller's field is kept in: microseconds for a FLOWSPEC's Latency, seconds for a CLI time).
 * Kept in microseconds so that "20ms" is exactly 20000, with no binary fraction of a second. */
export function parseDurationUs(text: string, bare: 'us' | 's'): number {
  return DURATION.parse(text, bare, () => `duration "${text}": a number${bare === 'us' ? ' of microseconds' : ' of seconds'}, or with a unit (us, ms, s, m), e.g. 20ms`);
}

/** A rate in bytes per second as people read it: 9.58 Mbit/s (bits, powers of 1000). */
export function formatBitRate(bytesPerS: number): string {
  const bits = bytesPerS * 8;
  for (const [f, u] of [[1e9, 'Gbit/s'], [1e6, 'Mbit/s'], [1e3, 'kbit/s']] as const) if (bits >= f) return `${+(bits / f).toPrecision(3)} ${u}`;
  return `${Math.round(bits)} bit/s`;
}

/** A size in bytes as people read it: 745 MB (powers of 1000). */
export function formatBytes(bytes: number): string {
  for (const [f, u] of [[1e12, 'TB'], [1e9, 'GB'], [1e6, 'MB'], [1e3, 'kB']] as const) if (bytes >= f) return `${+(bytes / f).toPrecision(3)} ${u}`;
  return `${bytes} B`;
}
