/* A FLOWSPEC for people and for --json. JSON keys are the FLOWSPEC's field names in GQoS units
 * (TokenRate in bytes/s, Latency in microseconds), a field not specified is null, ServiceType
 * is the seed's name; the human form says each unit and "not specified". */

import { columns } from '../columns.js';
import { FIELD_UNITS, FIELDS, SERVICE_TYPES, WINDOWS_SERVICE_TYPES, type FlowSpec } from './model.js';
import { actualTokenRate, layer3Overhead, type Framing } from './overhead.js';
import type { Template } from './templates.js';

/** The FLOWSPEC as JSON: its eight fields in the structure's order. */
export function flowSpecJson(s: FlowSpec): Record<(typeof FIELDS)[number], number | string | null> {
  return Object.fromEntries(FIELDS.map((f) => [f, s[f]])) as Record<(typeof FIELDS)[number], number | string | null>;
}

/** The actual token rate and what it was computed for, as JSON. */
export function actualRateJson(s: FlowSpec, f: Framing): { proto: string; ipv6: boolean; overhead: number; TokenRate: number | null } {
  return { proto: f.proto, ipv6: f.ipv6, overhead: layer3Overhead(f), TokenRate: actualTokenRate(s, f) };
}

function rate(n: number): string {
  const bits = n * 8;
  const human = bits >= 1e6 ? `${+(bits / 1e6).toFixed(3)} Mbit/s` : `${+(bits / 1e3).toFixed(3)} kbit/s`;
  return `${n} bytes/s (${human})`;
}

/** One field's value with its unit, or "not specified". */
export function fieldText(s: FlowSpec, f: (typeof FIELDS)[number]): string {
  if (f === 'ServiceType') return `${s.ServiceType} (${WINDOWS_SERVICE_TYPES[s.ServiceType]}, ${SERVICE_TYPES[s.ServiceType]})`;
  const v = s[f];
  if (v === null) return 'not specified';
  const unit = FIELD_UNITS[f];
  return unit === 'bytes/s' ? rate(v) : unit === 'us' ? `${v} us (${+(v / 1000).toFixed(3)} ms)` : `${v} bytes`;
}

/** The FLOWSPEC, one field a line, and the actual token rate for the framing given. */
export function formatFlowSpec(s: FlowSpec, f: Framing): string {
  const lines = FIELDS.map((x) => `${x.padEnd(20)}${fieldText(s, x)}`);
  const actual = actualTokenRate(s, f);
  const over = `${f.proto.toUpperCase()}/${f.ipv6 ? 'IPv6' : 'IPv4'}, ${layer3Overhead(f)} bytes of headers per packet`;
  lines.push(`${'actual TokenRate'.padEnd(20)}${actual === null ? `cannot be computed without ${s.TokenRate === null ? 'TokenRate' : 'MinimumPolicedSize'}` : rate(actual)} (${over})`);
  return lines.join('\n');
}

/** The templates, one a line: the values each template sets. */
export function formatTemplates(ts: readonly Template[]): string {
  const head = ['NAME', 'SERVICE', 'TokenRate', 'Bucket', 'Peak', 'MaxSdu', 'MinPoliced', 'CODEC'];
  const cell = (v: number | null) => (v === null ? '-' : String(v));
  const rows = ts.map((t) => [t.name, t.spec.ServiceType, cell(t.spec.TokenRate), cell(t.spec.TokenBucketSize), cell(t.spec.PeakBandwidth), cell(t.spec.MaxSduSize), cell(t.spec.MinimumPolicedSize), t.codec.about]);
  return `${columns([head, ...rows]).join('\n')}\n(rates in bytes/s, sizes in bytes, - not specified; qos flowspec show NAME for a template's derivation)`;
}

/** A template: its codec, the FLOWSPEC and how each value was derived. */
export function formatTemplate(t: Template, f: Framing): string {
  const w = Math.max(...t.derivation.map((d) => d.name.length)) + 2;
  return [
    `${t.name}: ${t.codec.about}`,
    '',
    formatFlowSpec(t.spec, f),
    '',
    'derivation:',
    ...t.derivation.map((d) => `  ${d.name.padEnd(w)}${(d.value === null ? '-' : String(d.value)).padStart(6)}  ${d.formula}`),
  ].join('\n');
}
