/* `qos characterize FILE`: each flow of a capture (pcap or pcapng), its statistics and its
 * (r, b) curve, the knee and a suggested TSpec. Two passes over the file, each streaming
 * (memory does not grow with its length): the first finds each flow's mean and peak rate,
 * which bound the grid of rates; the second computes b(r) on it. docs/characterize.md. */

import { createReadStream } from 'node:fs';
import { PcapReader, type Packet } from '../capture/pcap.js';
import { notCounted, records, type CaptureSummary } from '../capture/summary.js';
import { QosError } from '../errors.js';
import { BucketCurve, FlowStats, knee, rateGrid, type CurvePoint } from './lbap.js';
import { CumulativeSampler } from './plot.js';

export interface CharacterizeOptions {
  /** which packets count (default: all IP packets) */
  select?: (p: Packet) => boolean;
  /** rates to evaluate, bytes (or packets) per second; default: a grid per flow */
  rates?: number[];
  /** points of the grid between the flow's mean and peak rate */
  grid?: number;
  /** count packets, not bytes */
  count?: boolean;
  /** m: a smaller packet counts as this many bytes */
  minUnit?: number;
  /** window of the peak rate, seconds */
  peakWindowS?: number;
  /** flows beyond this many are refused (a capture of a whole network) */
  maxFlows?: number;
  /** also sample the largest flow's cumulative traffic (for the plot) */
  cumulative?: boolean;
  /** how the capture is called in the result and in errors (default: the file's path; an
   * upload's temporary file is called by the name its sender gave) */
  name?: string;
}

export interface TSpec { r: number; b: number; p: number; m: number; M: number }

export interface FlowResult {
  key: string;
  packets: number;
  bytes: number;
  duration_s: number;
  mean_rate_Bps: number;
  peak_rate_Bps: number;
  M: number;
  m: number;
  curve: CurvePoint[];
  knee: CurvePoint;
  tspec: TSpec;
  /** the MinimumPolicedSize to suggest: the mean packet size (seed 002) */
  minimum_policed_size: number;
}

export interface CharacterizeResult {
  file: string;
  unit: 'bytes' | 'packets';
  peak_window_s: number;
  flows: FlowResult[];
  /** what the file held: records, IP packets and bytes, first and last time, what was skipped */
  capture: CaptureSummary;
  /** records skipped and why (a damaged record's offset, a link type not read) */
  warnings: string[];
  /** the largest flow's cumulative traffic, when asked for */
  cumulative?: { key: string; t: number[]; d: number[] };
}

/** A flow's name: protocol, source and destination (IPv6 addresses in brackets). */
export function flowKey(p: Packet): string {
  const proto = p.proto === 6 ? 'tcp' : p.proto === 17 ? 'udp' : `ip${p.proto}`;
  const at = (a: string, port: number) => (p.family === 6 ? `[${a}]` : a) + (p.proto === 6 || p.proto === 17 ? `:${port}` : '');
  return `${proto} ${at(p.src, p.sport)} > ${at(p.dst, p.dport)}`;
}

/** Which packets a `--flow` spec selects: comma-separated field=value (proto, src, dst,
 * sport, dport, host, port), or a flow key as printed ("udp 10.0.0.1:4000 > 10.0.0.2:5004"). */
export function flowFilter(spec: string): (p: Packet) => boolean {
  const s = spec.trim();
  if (/^(tcp|udp|ip\d+) /.test(s)) return (p) => flowKey(p) === s;
  const tests: ((p: Packet) => boolean)[] = [];
  for (const part of s.split(',')) {
    const m = /^\s*(proto|src|dst|sport|dport|host|port)\s*=\s*(\S+)\s*$/.exec(part);
    if (!m) throw new QosError('QOS_ERR_USAGE', `--flow: "${part.trim()}" is not field=value (fields: proto, src, dst, sport, dport, host, port) nor a flow key like "udp 10.0.0.1:4000 > 10.0.0.2:5004"`);
    const [, field, value] = m as unknown as [string, string, string];
    const num = Number(value);
    const port = () => { if (!Number.isInteger(num) || num < 0 || num > 65535) throw new QosError('QOS_ERR_USAGE', `--flow: ${field}=${value} is not a port`); return num; };
    switch (field) {
      case 'proto': {
        const n = value === 'tcp' ? 6 : value === 'udp' ? 17 : Number.isInteger(num) && num >= 0 && num < 256 ? num : NaN;
        if (Number.isNaN(n)) throw new QosError('QOS_ERR_USAGE', `--flow: proto=${value} is not tcp, udp or a number`);
        tests.push((p) => p.proto === n);
        break;
      }
      case 'src': tests.push((p) => p.src === value); break;
      case 'dst': tests.push((p) => p.dst === value); break;
      case 'host': tests.push((p) => p.src === value || p.dst === value); break;
      case 'sport': { const n = port(); tests.push((p) => p.sport === n); break; }
      case 'dport': { const n = port(); tests.push((p) => p.dport === n); break; }
      case 'port': { const n = port(); tests.push((p) => p.sport === n || p.dport === n); break; }
    }
  }
  return (p) => tests.every((t) => t(p));
}

/** Feeds a capture file through a reader; resolves, with the reader, when it is all read. */
async function readFile(file: string, name: string, onPacket: (p: Packet) => void): Promise<PcapReader> {
  const reader = new PcapReader(onPacket);
  const stream = createReadStream(file, { highWaterMark: 1 << 20 });
  try {
    for await (const chunk of stream) reader.push(chunk as Buffer);
  } catch (e) {
    if (e instanceof QosError) throw new QosError(e.code, `${name}: ${e.message}`);
    const err = e as NodeJS.ErrnoException;
    throw new QosError(err.code === 'ENOENT' ? 'QOS_ERR_NOT_FOUND' : 'QOS_ERR_CAPTURE', `${name}: ${err.message.replaceAll(file, name)}`);
  }
  try { reader.end(); } catch (e) { throw new QosError((e as QosError).code, `${name}: ${(e as Error).message}`); }
  return reader;
}

export async function characterizeFile(file: string, o: CharacterizeOptions = {}): Promise<CharacterizeResult> {
  const select = o.select ?? (() => true);
  const window = o.peakWindowS ?? 0.01;
  const maxFlows = o.maxFlows ?? 10_000;
  const name = o.name ?? file;
  const size = (p: Packet) => (o.count ? 1 : p.ipLength);
  let t0: bigint | null = null;
  const secs = (p: Packet) => { if (t0 === null) t0 = p.tsNs; return Number(p.tsNs - t0) / 1e9; };
  // pass 1: statistics
  const stats = new Map<string, FlowStats>();
  const read = await readFile(file, name, (p) => {
    if (!select(p)) return;
    const k = flowKey(p);
    let s = stats.get(k);
    if (!s) {
      if (stats.size >= maxFlows) throw new QosError('QOS_ERR_USAGE', `${name} has more than ${maxFlows} flows: choose some with --flow`);
      stats.set(k, (s = new FlowStats(window)));
    }
    s.add(secs(p), size(p));
  });
  // pass 2: b(r) on each flow's rates
  const curves = new Map<string, BucketCurve>();
  for (const [k, s] of stats) {
    let rates: Float64Array;
    if (o.rates) rates = Float64Array.from([...o.rates].sort((a, b) => a - b));
    else {
      const hi = Math.max(s.peakRate, s.meanRate);
      const lo = s.meanRate > 0 ? s.meanRate : hi / 100;
      // a flow that carried no bytes has no rate to grid: one point, and no knee of its own
      rates = hi > 0 ? rateGrid(lo, Math.max(hi, lo), o.grid ?? 32) : Float64Array.of(1);
    }
    curves.set(k, new BucketCurve(rates, o.minUnit ?? 0));
  }
  let biggest: string | undefined;
  for (const [k, s] of stats) if (!biggest || s.bytes > stats.get(biggest)!.bytes) biggest = k;
  const sampler = o.cumulative && biggest ? new CumulativeSampler(stats.get(biggest)!.first, stats.get(biggest)!.last) : undefined;
  t0 = null;
  await readFile(file, name, (p) => {
    if (!select(p)) return;
    const k = flowKey(p), t = secs(p), n = size(p);
    curves.get(k)?.add(t, n);
    if (sampler && k === biggest) sampler.add(t, n);
  });
  const flows: FlowResult[] = [];
  for (const [k, s] of stats) {
    // b to a millionth of a byte: time in floating point leaves dust like 200.00000000000887
    const curve = curves.get(k)!.curve().map((p) => ({ r_Bps: p.r_Bps, b_bytes: Math.round(p.b_bytes * 1e6) / 1e6 }));
    const kn = knee(curve.some((c) => c.r_Bps > 0 && c.b_bytes > 0) ? curve : [{ r_Bps: 1, b_bytes: 1 }]);
    const m = Math.max(o.minUnit ?? 0, s.m);
    flows.push({
      key: k, packets: s.packets, bytes: s.bytes, duration_s: s.durationS, mean_rate_Bps: s.meanRate, peak_rate_Bps: s.peakRate, M: s.M, m: s.m,
      curve, knee: { r_Bps: kn.r_Bps, b_bytes: kn.b_bytes },
      tspec: { r: kn.r_Bps, b: kn.b_bytes, p: Math.max(s.peakRate, kn.r_Bps), m, M: s.M },
      minimum_policed_size: Math.round(s.meanSize),
    });
  }
  flows.sort((a, b) => b.bytes - a.bytes || a.key.localeCompare(b.key));
  const warnings = read.warnings.map((w) => `${name}: ${w}`);
  if (read.warningsLeftOff) warnings.push(`${name}: and ${read.warningsLeftOff} more warnings like these`);
  const result: CharacterizeResult = { file: name, unit: o.count ? 'packets' : 'bytes', peak_window_s: window, flows, capture: read.summary(), warnings };
  if (sampler && biggest) result.cumulative = { key: biggest, ...sampler.series() };
  return result;
}

/** What `qos characterize --json` prints, and POST /v1/characterize answers, for a result: it
 * without the plot's samples; no flow at all is QOS_ERR_NOT_FOUND, saying of what (`none`:
 * "IP packet", "packet matches --flow"). */
export function characterizationJson(r: CharacterizeResult, none: string): Omit<CharacterizeResult, 'cumulative'> {
  if (!r.flows.length) throw new QosError('QOS_ERR_NOT_FOUND', `${r.file}: no ${none}${skippedNote(r.capture)}`);
  const { cumulative: _, ...json } = r;
  return json;
}

/** What a capture with no flow held instead, as the end of the error that says so. */
function skippedNote(c: CaptureSummary): string {
  const parts = notCounted(c);
  return parts.length ? ` (${records(c.records)}: ${parts.join('; ')})` : '';
}
