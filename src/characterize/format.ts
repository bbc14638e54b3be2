/* `qos characterize` for people: per flow a summary line, the suggested TSpec, and (for a few
 * flows) the curve. */

import { notCounted, records, type CaptureSummary } from '../capture/summary.js';
import type { Snapshot } from './live.js';
import type { CharacterizeResult } from './offline.js';
import { num } from './num.js';

/** What the file held, in a line: its records, IP packets, their time, what was skipped. */
export function formatCapture(file: string, c: CaptureSummary): string {
  const iso = (s: string) => new Date(Number(s) * 1000).toISOString();
  const ip = `${c.ip_packets} IP packet${c.ip_packets === 1 ? '' : 's'} (${num(c.ip_bytes)} B)${c.first_s && c.last_s ? ` from ${iso(c.first_s)} to ${iso(c.last_s)}` : ''}`;
  return `${file}: ${c.format ?? 'capture'}, ${records(c.records)}: ${[ip, ...notCounted(c)].join('; ')}`;
}

export function formatCharacterization(r: CharacterizeResult): string {
  const u = r.unit === 'bytes' ? 'B' : 'pkt';
  const out: string[] = [formatCapture(r.file, r.capture)];
  for (const f of r.flows) {
    out.push(`${f.key}: ${f.packets} packets, ${num(f.bytes)} ${r.unit === 'bytes' ? 'B' : 'units'} in ${f.duration_s.toFixed(3)} s; mean ${num(f.mean_rate_Bps)} ${u}/s, peak ${num(f.peak_rate_Bps)} ${u}/s (over ${r.peak_window_s * 1000} ms); M ${f.M}, m ${f.m}`);
    out.push(`  knee r ${num(f.knee.r_Bps)} ${u}/s, b ${num(f.knee.b_bytes)} ${u}; TSpec r=${Math.round(f.tspec.r)} b=${Math.round(f.tspec.b)} p=${Math.round(f.tspec.p)} m=${f.tspec.m} M=${f.tspec.M}; MinimumPolicedSize ${f.minimum_policed_size}`);
    if (r.flows.length <= 3) {
      out.push(`  ${'r'.padStart(12)} ${'b'.padStart(12)}`);
      for (const p of f.curve) out.push(`  ${num(p.r_Bps).padStart(12)} ${num(p.b_bytes).padStart(12)}${p.r_Bps === f.knee.r_Bps ? '  <- knee' : ''}`);
    }
  }
  return out.join('\n');
}

/** One on-line estimate, as a line. */
export function formatSnapshot(s: Snapshot, unit: 'bytes' | 'packets'): string {
  const u = unit === 'bytes' ? 'B' : 'pkt';
  return `${s.t_s.toFixed(1).padStart(7)} s  ${s.key}: r ${num(s.r)} ${u}/s, b ${num(s.b)} ${u}, p ${num(s.p)} ${u}/s, M ${s.M}, ${s.packets} packets${s.advertise ? '  (advertise)' : ''}`;
}
