/* The declarative policy engine: rules compiled once into an index so that deciding one call
 * costs neither a scan of every rule nor a regex per rule. First match wins (seed 004's
 * ordered rules); the default applies when no rule matches. */

import type { Decision } from '../protocol/messages.js';
import { dscpValue } from './dscp.js';
import { compilePattern, isLiteral } from './glob.js';
import { cidrContains, parseCidr, parsePortSpec, type Addr128, type Cidr, type PortRange } from './net.js';
import { EVENT_NAMES, type ActionDoc, type EventName, type PolicyDoc } from './schema.js';

/** Who is calling, as the daemon learned it from the kernel; memo is the engine's cache. */
export interface Identity {
  pid: number;
  uid: number;
  gid: number;
  user: string;
  group: string;
  exe: string;
  cmdline: string;
  unit: string;
  cgroup: string;
  memo?: { version: number; bits: Int8Array };
}

export interface Endpoint { addr: Addr128; port: number }

/** What the call is about. */
export interface CallFacts {
  event: EventName;
  family?: 'inet' | 'inet6';
  type?: 'stream' | 'dgram' | 'raw';
  proto?: 'tcp' | 'udp';
  remote?: Endpoint;
  local?: Endpoint;
}

export interface Verdict {
  /** null: leave the socket alone. */
  decision: Decision | null;
  /** The rule that decided, "default", or null when nothing applied. */
  rule: string | null;
}

const EV_BIT = Object.fromEntries(EVENT_NAMES.map((e, i) => [e, 1 << i])) as Record<EventName, number>;
/** A rule without `event` applies to every call except setsockopt: the application's own
 * marking is overridden only by a rule that names that event. */
const DEFAULT_EVENTS = ((1 << EVENT_NAMES.length) - 1) & ~EV_BIT.setsockopt;
const FAMILY_BIT = { inet: 1, inet6: 2 } as const;
const TYPE_BIT = { stream: 1, dgram: 2, raw: 4 } as const;
const PROTO_BIT = { tcp: 1, udp: 2 } as const;
/** Ranges up to this many ports are indexed port by port. */
const MAX_EXPAND = 16;
/** Upper bound on index entries before the port index is given up (memory). */
const MAX_INDEX_ENTRIES = 4_000_000;

type IdentityKey = 'exe' | 'cmdline' | 'user' | 'group' | 'uid' | 'gid' | 'unit';

interface Predicate { key: IdentityKey; test: (id: Identity) => boolean }

interface CompiledRule {
  name: string;
  events: number;
  families: number; // 0 = any
  types: number;
  protos: number;
  ident: number[]; // predicate ids, all must hold
  remote?: Cidr[];
  local?: Cidr[];
  remotePorts?: PortRange[];
  localPorts?: PortRange[];
  decision: Decision | null;
}

const list = <T>(v: T | T[] | undefined): T[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);

function bits<K extends string>(v: K | K[] | undefined, table: Record<K, number>): number {
  return (list(v) ?? []).reduce((acc, k) => acc | table[k], 0);
}

/** Turns an action into the reply decision (null for `none`). */
export function actionDecision(a: ActionDoc): Decision | null {
  if (a.none) return null;
  if (a.deny) return { deny: a.deny };
  const d: Decision = {};
  if (a.tos !== undefined) d.tos = a.tos;
  if (a.dscp !== undefined) d.dscp = dscpValue(a.dscp)!;
  if (a.priority !== undefined) d.priority = a.priority;
  if (a.override) d.override = true;
  return d;
}

function inPorts(ranges: PortRange[], p: number): boolean {
  for (const r of ranges) if (p >= r.lo && p <= r.hi) return true;
  return false;
}

function inCidrs(cs: Cidr[], a: Addr128): boolean {
  for (const c of cs) if (cidrContains(c, a)) return true;
  return false;
}

let versions = 0;

export class PolicyEngine {
  readonly version = ++versions;
  readonly ruleCount: number;
  private readonly rules: CompiledRule[];
  private readonly preds: Predicate[] = [];
  private readonly defaultDecision: Decision | null;
  private readonly hasDefault: boolean;
  /** Per event bit: candidates by remote port, and the candidates for any other port. */
  private readonly index: { byPort: Map<number, Int32Array>; rest: Int32Array }[] = [];

  constructor(doc: PolicyDoc) {
    const predIds = new Map<string, number>();
    const pred = (key: IdentityKey, values: (string | number)[]): number => {
      const sig = key + '\0' + JSON.stringify(values);
      let idx = predIds.get(sig);
      if (idx === undefined) {
        idx = this.preds.length;
        predIds.set(sig, idx);
        this.preds.push({ key, test: makeTest(key, values) });
      }
      return idx;
    };
    this.rules = doc.rules.map((r, i): CompiledRule => {
      const m = r.match;
      const ident: number[] = [];
      for (const key of ['uid', 'gid', 'user', 'group', 'exe', 'unit', 'cmdline'] as const) {
        const v = list(m[key] as string | number | (string | number)[] | undefined);
        if (v) ident.push(pred(key, v));
      }
      return {
        name: r.name ?? `rule-${i + 1}`,
        events: bits(m.event, EV_BIT) || DEFAULT_EVENTS,
        families: bits(m.family, FAMILY_BIT),
        types: bits(m.type, TYPE_BIT),
        protos: bits(m.proto, PROTO_BIT),
        ident,
        remote: list(m.remote)?.map((c) => parseCidr(c)!),
        local: list(m.local)?.map((c) => parseCidr(c)!),
        remotePorts: list(m.remote_port)?.map((p) => parsePortSpec(p)!),
        localPorts: list(m.local_port)?.map((p) => parsePortSpec(p)!),
        decision: actionDecision(r.action),
      };
    });
    this.ruleCount = this.rules.length;
    this.hasDefault = doc.default !== undefined;
    this.defaultDecision = doc.default ? actionDecision(doc.default) : null;
    for (let e = 0; e < EVENT_NAMES.length; e++) this.index.push(this.buildIndex(1 << e));
  }

  private buildIndex(ev: number): { byPort: Map<number, Int32Array>; rest: Int32Array } {
    const rest: number[] = [];
    const exact = new Map<number, number[]>();
    this.rules.forEach((r, i) => {
      if (!(r.events & ev)) return;
      const span = r.remotePorts?.reduce((n, p) => n + (p.hi - p.lo + 1), 0) ?? Infinity;
      if (span <= MAX_EXPAND) {
        for (const p of r.remotePorts!) for (let port = p.lo; port <= p.hi; port++) {
          const l = exact.get(port) ?? [];
          if (l[l.length - 1] !== i) l.push(i);
          exact.set(port, l);
        }
      } else rest.push(i);
    });
    const byPort = new Map<number, Int32Array>();
    if (exact.size * rest.length <= MAX_INDEX_ENTRIES) {
      for (const [port, ids] of exact) byPort.set(port, Int32Array.from(mergeSorted(ids, rest)));
      return { byPort, rest: Int32Array.from(rest) };
    }
    // Too many combinations to precompute: fall back to one ordered list.
    const all: number[] = [];
    this.rules.forEach((r, i) => { if (r.events & ev) all.push(i); });
    return { byPort, rest: Int32Array.from(all) };
  }

  /** First matching rule's decision, else the default. */
  decide(id: Identity, f: CallFacts): Verdict {
    const ix = this.index[EVENT_NAMES.indexOf(f.event)]!;
    const cands = f.remote ? ix.byPort.get(f.remote.port) ?? ix.rest : ix.rest;
    const fam = f.family ? FAMILY_BIT[f.family] : 0;
    const typ = f.type ? TYPE_BIT[f.type] : 0;
    const pro = f.proto ? PROTO_BIT[f.proto] : 0;
    let memo = id.memo;
    if (!memo || memo.version !== this.version) memo = id.memo = { version: this.version, bits: new Int8Array(this.preds.length) };
    outer: for (let k = 0; k < cands.length; k++) {
      const r = this.rules[cands[k]!]!;
      if ((r.families && !(r.families & fam)) || (r.types && !(r.types & typ)) || (r.protos && !(r.protos & pro))) continue;
      if (r.remotePorts && (!f.remote || !inPorts(r.remotePorts, f.remote.port))) continue;
      if (r.remote && (!f.remote || !inCidrs(r.remote, f.remote.addr))) continue;
      if (r.localPorts && (!f.local || !inPorts(r.localPorts, f.local.port))) continue;
      if (r.local && (!f.local || !inCidrs(r.local, f.local.addr))) continue;
      for (const p of r.ident) {
        let v = memo.bits[p]!;
        if (v === 0) v = memo.bits[p] = this.preds[p]!.test(id) ? 1 : 2;
        if (v === 2) continue outer;
      }
      return { decision: r.decision, rule: r.name };
    }
    if (f.event === 'setsockopt') return { decision: null, rule: null };
    return this.hasDefault ? { decision: this.defaultDecision, rule: 'default' } : { decision: null, rule: null };
  }
}

function mergeSorted(a: number[], b: number[]): number[] {
  const out: number[] = [];
  let i = 0, j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]! < b[j]!)) out.push(a[i++]!);
    else if (i >= a.length || b[j]! < a[i]!) out.push(b[j++]!);
    else { out.push(a[i++]!); j++; }
  }
  return out;
}

function makeTest(key: IdentityKey, values: (string | number)[]): (id: Identity) => boolean {
  switch (key) {
    case 'uid': case 'gid': {
      const s = new Set(values.map(Number));
      return (id) => s.has(id[key]);
    }
    case 'user': case 'group': {
      const s = new Set(values.map(String));
      return (id) => s.has(id[key]);
    }
    default: {
      const pats = values.map(String);
      const literals = new Set(pats.filter(isLiteral));
      const res = pats.filter((p) => !isLiteral(p)).map(compilePattern);
      return (id) => literals.has(id[key]) || res.some((re) => re.test(id[key]));
    }
  }
}
