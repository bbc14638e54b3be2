/* Which traffic-control flow a socket's packets fall in (`qos explain`; docs/traffic-control.md):
 * the daemon's flows and filters as GET /v1/tc lists them, looked up as the table `inet qosd_tc`
 * looks up a packet leaving by an interface: an exact filter on the 5-tuple first, then the
 * filters with wildcards on that interface (they never overlap, so at most one matches).
 * Whether an administrator's filter, the one tc/attach.ts made for the socket's policy rule, or
 * none. Pure. */

import { classOf } from '../tc/plan.js';
import { isExact, overlaps, parseFilter, type TcFilter } from '../tc/model.js';
import type { FiveTuple } from '../tc/attach.js';
import type { TcPlace } from './types.js';

export type { TcPlace } from './types.js';

/** A flow as GET /v1/tc lists it (control.ts flowJson): the fields explain shows. */
export interface TcFlowJson {
  id: number; dev: string; name: string | null; mode: string; service: string; rate: number;
  conforming: { dscp: number; pcp: number }; nonconforming: { dscp: number; pcp: number };
  owner: { kind: string; pid?: number; fd?: number; rule?: string; reservation?: string };
}
/** A filter as GET /v1/tc lists it (control.ts filterJson). */
export interface TcFilterJson { id: number; flow: number; family: 4 | 6; src: string; dst: string; proto: string; sport: string; dport: string; exact: boolean }
export interface TcListing { flows: TcFlowJson[]; filters: TcFilterJson[] }


/** The listing's filters parsed once per explanation, each with its flow. */
export interface TcLookup { byDev: Map<string, { filter: TcFilter; flow: TcFlowJson; text: TcFilterJson }[]> }

export function tcLookup(l: TcListing): TcLookup {
  const flows = new Map(l.flows.map((f) => [f.id, f]));
  const byDev = new Map<string, { filter: TcFilter; flow: TcFlowJson; text: TcFilterJson }[]>();
  for (const t of l.filters) {
    const flow = flows.get(t.flow);
    if (!flow) continue;
    const filter = parseFilter({ flow: t.flow, family: t.family, src: t.src, dst: t.dst, proto: t.proto, sport: t.sport, dport: t.dport }, t.id);
    const list = byDev.get(flow.dev) ?? [];
    list.push({ filter, flow, text: t });
    byDev.set(flow.dev, list);
  }
  return { byDev };
}

const tupleText = (t: FiveTuple) => `${t.proto} ${t.family === 6 ? `[${t.src}]` : t.src}:${t.sport} -> ${t.family === 6 ? `[${t.dst}]` : t.dst}:${t.dport}`;

/** The flow the packets of t leaving by dev fall in. */
export function tcPlace(lookup: TcLookup, t: FiveTuple, dev: string): TcPlace {
  const candidates = lookup.byDev.get(dev);
  if (!candidates?.length) return { in: 'none', why: `no traffic-control filter on ${dev}, which its packets leave by` };
  const packet = parseFilter({ flow: 1, family: t.family, src: t.src, dst: t.dst, proto: t.proto, sport: t.sport, dport: t.dport }, 0);
  const hit = candidates.find((c) => isExact(c.filter) && overlaps(packet, c.filter)) ?? candidates.find((c) => !isExact(c.filter) && overlaps(packet, c.filter));
  if (!hit) return { in: 'none', why: `none of the ${candidates.length} traffic-control filter${candidates.length === 1 ? '' : 's'} on ${dev} matches ${tupleText(t)}` };
  const f = hit.flow, x = hit.text;
  return {
    in: 'flow', dev,
    flow: { id: f.id, name: f.name, class: classOf(f.id), mode: f.mode, service: f.service, rate: f.rate, conforming: f.conforming, nonconforming: f.nonconforming, owner: f.owner },
    filter: { id: x.id, exact: isExact(hit.filter), match: `${x.proto} ${x.src}:${x.sport} -> ${x.dst}:${x.dport}` },
  };
}
