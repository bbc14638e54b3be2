/* The pure part of RSVP state (RFC 2205 section 3): the keys path, reservation and traffic
 * control state are filed under (strings built once per block), the least upper bound of
 * flowspecs that merging takes (RFC 2211, RFC 2212), the blockade relation of section 3.5,
 * the merge of reservations per style into what traffic control installs on an interface
 * (section 3.1.4, "Style Rules"), and the identity POLICY_DATA carries (RFC 3182). */

import type { FilterSpec } from '../filter-spec.js';
import type { Flowspec } from '../flowspec.js';
import type { TokenBucket } from '../intserv.js';
import { A_TYPE, P_AUTH_APP, P_AUTH_USER, type PolicyData } from '../policy-data.js';
import type { Session } from '../session.js';
import type { StyleName } from '../style.js';
import type { PolicyIdentity } from './types.js';

/** A session is its destination, protocol and port (RFC 2205 section 1.1); flags are not part of it. */
export const sessionKey = (s: Session): string => `${s.destination}/${s.protocol}/${s.port}`;
/** A sender (SENDER_TEMPLATE or FILTER_SPEC: the same format) is its address and port. */
export const senderKey = (s: { source: string; port: number }): string => `${s.source}:${s.port}`;
/** The Reservation key traffic control knows: session + interface (+ sender for FF). */
export const reservationKey = (session: string, ifname: string, sender?: string): string =>
  sender === undefined ? `${session}@${ifname}` : `${session}@${ifname}#${sender}`;

export const asFilter = (s: { source: string; port: number }): FilterSpec => ({ kind: 'FILTER_SPEC', source: s.source, port: s.port });

function lubBucket(a: TokenBucket, b: TokenBucket): TokenBucket {
  // RFC 2211 section 5 / RFC 2212 section 9: the larger of r, b, p, M; the smaller m
  return { r: Math.max(a.r, b.r), b: Math.max(a.b, b.b), p: Math.max(a.p, b.p), m: Math.min(a.m, b.m), M: Math.max(a.M, b.M) };
}

/** The least upper bound of two flowspecs. A Guaranteed request is above a Controlled Load one
 * (RFC 2212 section 9: GS merged with CL is GS); GS takes the larger R and the smaller S. */
export function lub(a: Flowspec, b: Flowspec): Flowspec {
  const tspec = lubBucket(a.tspec, b.tspec);
  if (a.service === 'GS' && b.service === 'GS') return { kind: 'FLOWSPEC', service: 'GS', tspec, R: Math.max(a.R, b.R), S: Math.min(a.S, b.S) };
  const gs = a.service === 'GS' ? a : b.service === 'GS' ? b : null;
  return gs ? { ...gs, tspec } : { kind: 'FLOWSPEC', service: 'CL', tspec };
}

export function lubAll(fs: Flowspec[]): Flowspec | null {
  let out: Flowspec | null = null;
  for (const f of fs) out = out ? lub(out, f) : f;
  return out;
}

export function sameFlowspec(a: Flowspec | null, b: Flowspec | null): boolean {
  if (!a || !b) return a === b;
  const t = a.tspec, u = b.tspec;
  if (a.service !== b.service || t.r !== u.r || t.b !== u.b || t.p !== u.p || t.m !== u.m || t.M !== u.M) return false;
  return a.service !== 'GS' || b.service !== 'GS' || (a.R === b.R && a.S === b.S);
}

/** a is at least b in every component, in the order the LUB uses (m and S: smaller is more). */
function atLeast(a: Flowspec, b: Flowspec): boolean {
  const t = a.tspec, u = b.tspec;
  if (!(t.r >= u.r && t.b >= u.b && t.p >= u.p && t.M >= u.M && t.m <= u.m)) return false;
  if (b.service === 'CL') return true;
  return a.service === 'GS' && a.R >= b.R && a.S <= b.S;
}

/** RFC 2205 section 3.5: Qb blockades Qi unless Qb is strictly greater than Qi. "Strictly
 * greater" is read in the partial order: at least Qi in every component and not equal. (The
 * RFC's component-wise example, Qb[j] <= Qi[j] for some j, would let two requests that share
 * their packet sizes M and m blockade each other always, which defeats the purpose.) */
export function blockades(qb: Flowspec, qi: Flowspec): boolean {
  return !(atLeast(qb, qi) && !sameFlowspec(qb, qi));
}

/** The bandwidth a flowspec asks for, bytes/s: r for Controlled Load, the Rspec's R for Guaranteed. */
export const bandwidth = (f: Flowspec): number => (f.service === 'GS' ? f.R : f.tspec.r);

/** The user and application POLICY_DATA names (RFC 3182: the CREDENTIAL attribute's text of
 * AUTH_USER and AUTH_APP); null where none. */
export function identityOf(policies: PolicyData[]): PolicyIdentity {
  const id: PolicyIdentity = { user: null, app: null };
  for (const p of policies) {
    for (const e of p.elements) {
      if (!('attributes' in e)) continue;
      const cred = e.attributes.find((a) => a.aType === A_TYPE.CREDENTIAL && 'text' in a);
      if (!cred || !('text' in cred)) continue;
      if (e.pType === P_AUTH_USER && id.user === null) id.user = cred.text;
      if (e.pType === P_AUTH_APP && id.app === null) id.app = cred.text;
    }
  }
  return id;
}

/** What merging needs of one reservation state block. */
export interface RsbView { style: StyleName; flowspec: Flowspec; filters: FilterSpec[] }

/** What traffic control should hold on one interface of a session. */
export interface MergedReservation { key: string; sender: string | null; flowspec: Flowspec; filters: FilterSpec[] }

/** The reservations of the RSBs of one (session, outgoing interface), merged by style (RFC
 * 2205 section 3.1.4): FF one per sender, the LUB of the flowspecs asked for it; SE one, the LUB
 * and the union of the filters; WF one, the LUB, for every sender whose path state routes out
 * of the interface (`senders`). Sorted by key, so equal inputs give equal outputs. */
export function mergeReservations(session: string, ifname: string, style: StyleName, rsbs: RsbView[], senders: FilterSpec[]): MergedReservation[] {
  if (!rsbs.length) return [];
  if (style === 'FF') {
    const by = new Map<string, { f: FilterSpec; flows: Flowspec[] }>();
    for (const r of rsbs) for (const f of r.filters) {
      const k = senderKey(f);
      const e = by.get(k);
      if (e) e.flows.push(r.flowspec); else by.set(k, { f, flows: [r.flowspec] });
    }
    return [...by].sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, e]) => ({ key: reservationKey(session, ifname, k), sender: k, flowspec: lubAll(e.flows)!, filters: [e.f] }));
  }
  const flowspec = lubAll(rsbs.map((r) => r.flowspec))!;
  const filters = style === 'WF' ? senders : uniqueFilters(rsbs.flatMap((r) => r.filters));
  return [{ key: reservationKey(session, ifname), sender: null, flowspec, filters: sortFilters(filters) }];
}

export function uniqueFilters(fs: FilterSpec[]): FilterSpec[] {
  const seen = new Map<string, FilterSpec>();
  for (const f of fs) if (!seen.has(senderKey(f))) seen.set(senderKey(f), asFilter(f));
  return [...seen.values()];
}

export const sortFilters = (fs: FilterSpec[]): FilterSpec[] => [...fs].sort((a, b) => (senderKey(a) < senderKey(b) ? -1 : 1));

export function sameFilters(a: FilterSpec[], b: FilterSpec[]): boolean {
  return a.length === b.length && a.every((f, i) => senderKey(f) === senderKey(b[i]!));
}

/** What the upstream merge needs of a path state block and a reservation state block. */
export interface PsbView { key: string; outIf: string | null; template: { source: string; port: number } }
export interface RsbRoute extends RsbView { outIf: string }

/** The Resv a node sends one previous hop (RFC 2205 section 3.1.4, 3.5): the reservations
 * asked for the senders whose path state came from that hop (`psbs`), each on the interface
 * the sender's data leaves by, merged by style, with the flowspecs blockaded (`blockade`: by
 * sender for FF and SE, by previous hop for WF) left out of the LUB. When every one of them is
 * blockaded the LUB of all of them goes on, so the request stays alive upstream (and fails
 * again there, refreshing the blockade) rather than being torn down. Null: nothing to ask. */
export function mergeUpstream(style: StyleName, rsbs: RsbRoute[], psbs: PsbView[], blockade: (key: string) => Flowspec | undefined, phop: string): { flowspec: Flowspec; filters: FilterSpec[] }[] {
  const sorted = [...psbs].sort((a, b) => (a.key < b.key ? -1 : 1));
  const merged = (flows: RsbRoute[], blocked: (r: RsbRoute) => boolean): Flowspec | null => {
    const open = flows.filter((r) => !blocked(r));
    return lubAll((open.length ? open : flows).map((r) => r.flowspec));
  };
  const qbBlocks = (key: string, r: RsbRoute) => { const qb = blockade(key); return !!qb && blockades(qb, r.flowspec); };
  if (style === 'FF') {
    const out: { flowspec: Flowspec; filters: FilterSpec[] }[] = [];
    for (const p of sorted) {
      const flows = rsbs.filter((r) => r.outIf === p.outIf && r.filters.some((f) => senderKey(f) === p.key));
      const flowspec = merged(flows, (r) => qbBlocks(p.key, r));
      if (flowspec) out.push({ flowspec, filters: [asFilter(p.template)] });
    }
    return out;
  }
  if (style === 'SE') {
    const mine = new Map(sorted.map((p) => [p.key, p]));
    const ours = (r: RsbRoute) => r.filters.filter((f) => mine.get(senderKey(f))?.outIf === r.outIf);
    const flows = rsbs.filter((r) => ours(r).length);
    const flowspec = merged(flows, (r) => ours(r).some((f) => qbBlocks(senderKey(f), r)));
    return flowspec ? [{ flowspec, filters: sortFilters(uniqueFilters(flows.flatMap(ours))) }] : [];
  }
  const outs = new Set(sorted.map((p) => p.outIf));
  const flowspec = merged(rsbs.filter((r) => outs.has(r.outIf)), (r) => qbBlocks(phop, r));
  return flowspec ? [{ flowspec, filters: [] }] : [];
}
