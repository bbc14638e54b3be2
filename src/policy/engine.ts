/* The declarative policy engine: rules compiled once into bitset indexes (bitindex.ts) so that
 * deciding one call costs neither a scan of every rule nor a regex per rule: identity
 * patterns are evaluated once per process, every other dimension is one precomputed set.
 * First match wins (seed 004's ordered rules); the default applies when no rule matches. */

import { dscpValue } from './dscp.js';
import { compilePattern, isLiteral } from './glob.js';
import { andInto, Bits, CidrIndex, clearBit, dropFailed, firstSet, hasBit, PortIndex, setBit, type RuleBits } from './bitindex.js';
import { parseCidr, parsePortSpec, type Addr128, type Cidr, type PortRange } from './net.js';
import { asksTc, tcRequestOf, type TcRequest } from '../tc/request.js';
import { reserveRequestOf, type ReserveRequest } from '../rsvp/reserve-request.js';
import { parseRate } from '../units.js';
import { EVENT_NAMES, list, type ActionDoc, type EventName, type PolicyDoc } from './schema.js';

/** What a policy decides for one call (the reply directives). */
export interface Decision {
  tos?: number;      // raw TOS octet 0-255 (paper: "TOS 48")
  dscp?: number;     // 0-63
  priority?: number; // SO_PRIORITY 0-7
  deny?: string;     // errno name
  override?: boolean;
  /** a flow of host traffic control for the socket (tc/request.ts), attached by tc/attach.ts */
  tc?: TcRequest;
  /** an RSVP reservation for the socket's flow (rsvp/reserve-request.ts), signalled by
   * rsvp/attach.ts; the socket itself is left best effort until it is admitted */
  reserve?: ReserveRequest;
  /** a per-application limit (docs/apps.md): key names it (the rule's name, or `default`), and
   * every socket decided with that key shares its rates, in bytes per second */
  limit?: DecisionLimit;
}

export interface DecisionLimit { key: string; egress?: number; ingress?: number }

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
  /** the process's start time in clock ticks since boot (tells a reused pid); absent in tests */
  start?: number;
  /** the engine's cache for this process: which rules' identity patterns are known to hold */
  memo?: IdentityMemo;
}

/** Rules whose identity patterns were evaluated for one process (known) and those that held
 * (passed), filled lazily: a process only pays for the patterns of rules its calls reach. */
export interface IdentityMemo { version: number; known: RuleBits; passed: RuleBits; preds: Int8Array }

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
const EV_INDEX = Object.fromEntries(EVENT_NAMES.map((e, i) => [e, i])) as Record<EventName, number>;
/** A rule without `event` applies to every call except setsockopt: the application's own
 * marking is overridden only by a rule that names that event. */
const DEFAULT_EVENTS = ((1 << EVENT_NAMES.length) - 1) & ~EV_BIT.setsockopt;
const FAMILY_BIT = { inet: 1, inet6: 2 } as const;
const TYPE_BIT = { stream: 1, dgram: 2, raw: 4 } as const;
const PROTO_BIT = { tcp: 1, udp: 2 } as const;

type IdentityKey = 'exe' | 'cmdline' | 'user' | 'group' | 'uid' | 'gid' | 'unit';

interface Predicate { key: IdentityKey; values: (string | number)[]; test: (id: Identity) => boolean }

/** A compiled policy as plain data (typed arrays, maps, arrays): what a worker thread that
 * parsed and compiled a policy hands back (structured clone), so the daemon's event loop only
 * revives it (PolicyEngine.revive). Opaque outside this module. */
export interface CompiledPolicy { readonly compiled: true }

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

function bits<K extends string>(v: K | K[] | undefined, table: Record<K, number>): number {
  return (list(v) ?? []).reduce((acc, k) => acc | table[k], 0);
}

/** Turns an action into the reply decision (null for `none`); a limit is kept under key (a
 * rule's name, or `default`): without one (a script's answer) the action has no limit. */
export function actionDecision(a: ActionDoc, key?: string): Decision | null {
  if (a.none) return null;
  if (a.deny) return { deny: a.deny };
  const d: Decision = {};
  if (a.reserve) {
    // marked above best effort only once admitted (seed 003): the mark goes with the
    // reservation, not in the reply that marks the socket now
    const mark = a.dscp !== undefined ? dscpValue(a.dscp)! : a.tos !== undefined ? a.tos >> 2 : null;
    d.reserve = reserveRequestOf(a.reserve, mark);
  } else {
    if (a.tos !== undefined) d.tos = a.tos;
    if (a.dscp !== undefined) d.dscp = dscpValue(a.dscp)!;
  }
  if (a.priority !== undefined) d.priority = a.priority;
  if (a.override) d.override = true;
  if (asksTc(a)) d.tc = tcRequestOf(a);
  if (a.limit && key !== undefined) {
    d.limit = { key };
    if (a.limit.egress !== undefined) d.limit.egress = parseRate(a.limit.egress);
    if (a.limit.ingress !== undefined) d.limit.ingress = parseRate(a.limit.ingress);
  }
  return d;
}

let versions = 0;

export class PolicyEngine {
  readonly version = ++versions;
  readonly ruleCount: number;
  private readonly rules: CompiledRule[];
  private readonly preds: Predicate[] = [];
  private readonly defaultDecision: Decision | null;
  private readonly hasDefault: boolean;
  /** Rules allowing each event (by event index), family, type and protocol bit (0: absent). */
  private readonly byEvent: RuleBits[];
  private readonly byFamily: RuleBits[];
  private readonly byType: RuleBits[];
  private readonly byProto: RuleBits[];
  private readonly remotePorts: PortIndex;
  private readonly localPorts: PortIndex;
  private readonly remoteNets: CidrIndex;
  private readonly localNets: CidrIndex;
  private readonly scratch: RuleBits;
  private readonly noIdentity: RuleBits;
  /** The events some rule names in its `event` (bits of EV_BIT); a rule without one is not counted. */
  private readonly named: number;
  /** The rules a call's kind allows before its addresses and ports are looked at: event,
   * family, type and protocol ANDed, and the unconstrained sets of the endpoints it lacks;
   * made on first use, by the key decide() computes (at most 7 x 3 x 5 x 3 x 4 of them). Not
   * in snapshot(). */
  private bases: (RuleBits | undefined)[] = [];

  constructor(doc: PolicyDoc) {
    const predIds = new Map<string, number>();
    const pred = (key: IdentityKey, values: (string | number)[]): number => {
      const sig = key + '\0' + JSON.stringify(values);
      let idx = predIds.get(sig);
      if (idx === undefined) {
        idx = this.preds.length;
        predIds.set(sig, idx);
        this.preds.push({ key, values, test: makeTest(key, values) });
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
        decision: actionDecision(r.action, r.name ?? `rule-${i + 1}`),
      };
    });
    this.ruleCount = this.rules.length;
    this.named = doc.rules.reduce((acc, r) => acc | bits(r.match.event, EV_BIT), 0);
    this.hasDefault = doc.default !== undefined;
    this.defaultDecision = doc.default ? actionDecision(doc.default, 'default') : null;
    const rules = this.rules;
    const sets = new Bits(rules.length);
    // A rule that constrains a dimension fails a call that lacks it (index 0).
    const allowing = (size: number, get: (r: CompiledRule) => number) =>
      Array.from({ length: size }, (_, v) => sets.of((i) => { const m = get(rules[i]!); return m === 0 || (m & v) !== 0; }));
    this.byEvent = EVENT_NAMES.map((_, e) => sets.of((i) => (rules[i]!.events & (1 << e)) !== 0));
    this.byFamily = allowing(3, (r) => r.families);
    this.byType = allowing(5, (r) => r.types);
    this.byProto = allowing(3, (r) => r.protos);
    this.remotePorts = new PortIndex(sets, rules.map((r) => r.remotePorts));
    this.localPorts = new PortIndex(sets, rules.map((r) => r.localPorts));
    this.remoteNets = new CidrIndex(sets, rules.map((r) => r.remote));
    this.localNets = new CidrIndex(sets, rules.map((r) => r.local));
    this.scratch = sets.empty();
    this.noIdentity = sets.of((i) => rules[i]!.ident.length === 0);
  }

  /** This engine as plain data for another thread (see CompiledPolicy). */
  snapshot(): CompiledPolicy {
    const { version: _v, bases: _b, preds, ...rest } = this as unknown as Record<string, unknown> & { version: number; bases: unknown; preds: Predicate[] };
    return { ...rest, preds: preds.map((p) => ({ key: p.key, values: p.values })) } as unknown as CompiledPolicy;
  }

  /** An engine from a snapshot() made in another thread: the identity tests are built again
   * (functions do not cross threads) and the indexes get their classes back. */
  static revive(c: CompiledPolicy): PolicyEngine {
    const s = c as unknown as Record<string, unknown> & { preds: { key: IdentityKey; values: (string | number)[] }[] };
    const e = Object.create(PolicyEngine.prototype) as PolicyEngine;
    Object.assign(e, s, {
      version: ++versions,
      bases: [],
      preds: s.preds.map((p) => ({ ...p, test: makeTest(p.key, p.values) })),
    });
    for (const k of ['remotePorts', 'localPorts'] as const) PortIndex.revive(e[k]);
    for (const k of ['remoteNets', 'localNets'] as const) Object.setPrototypeOf(e[k], CidrIndex.prototype);
    return e;
  }

  private memoFor(id: Identity): IdentityMemo {
    if (id.memo?.version === this.version) return id.memo;
    return (id.memo = { version: this.version, known: this.noIdentity.slice(), passed: this.noIdentity.slice(), preds: new Int8Array(this.preds.length) });
  }

  /** The set bases[key] holds (see bases), made now. */
  private base(key: number, event: EventName, fam: number, type: number, proto: number, remote: boolean, local: boolean): RuleBits {
    const b = this.byEvent[EV_INDEX[event]]!.slice();
    andInto(b, this.byFamily[fam]!);
    andInto(b, this.byType[type]!);
    andInto(b, this.byProto[proto]!);
    if (!remote) { this.remotePorts.restrict(b, undefined); this.remoteNets.restrict(b, undefined); }
    if (!local) { this.localPorts.restrict(b, undefined); this.localNets.restrict(b, undefined); }
    return (this.bases[key] = b);
  }

  /** Whether rule i's identity patterns hold for id (each pattern evaluated once per process). */
  private identityHolds(id: Identity, memo: IdentityMemo, i: number): boolean {
    const preds = memo.preds;
    let ok = true;
    for (const p of this.rules[i]!.ident) {
      if (preds[p] === 0) preds[p] = this.preds[p]!.test(id) ? 1 : 2;
      if (preds[p] === 2) { ok = false; break; }
    }
    setBit(memo.known, i);
    if (ok) setBit(memo.passed, i);
    return ok;
  }

  /** Whether some rule names this event in its `event` (agents ask at socket() itself only if
   * one names `socket`: docs/policy.md). */
  namesEvent(event: EventName): boolean {
    return (this.named & EV_BIT[event]) !== 0;
  }

  /** First matching rule's decision, else the default. */
  decide(id: Identity, f: CallFacts): Verdict {
    const acc = this.scratch;
    const fam = f.family ? FAMILY_BIT[f.family] : 0, type = f.type ? TYPE_BIT[f.type] : 0, proto = f.proto ? PROTO_BIT[f.proto] : 0;
    const remote = f.remote, local = f.local;
    const key = (((EV_INDEX[f.event] * 3 + fam) * 5 + type) * 3 + proto) * 4 + (remote ? 2 : 0) + (local ? 1 : 0);
    acc.set(this.bases[key] ?? this.base(key, f.event, fam, type, proto, remote !== undefined, local !== undefined));
    if (remote) {
      this.remotePorts.restrict(acc, remote.port);
      this.remoteNets.restrict(acc, remote.addr);
    }
    if (local) {
      this.localPorts.restrict(acc, local.port);
      this.localNets.restrict(acc, local.addr);
    }
    const memo = this.memoFor(id);
    dropFailed(acc, memo.known, memo.passed);
    for (let i = firstSet(acc); i >= 0; i = firstSet(acc)) {
      if (hasBit(memo.known, i) || this.identityHolds(id, memo, i)) return { decision: this.rules[i]!.decision, rule: this.rules[i]!.name };
      clearBit(acc, i);
    }
    if (f.event === 'setsockopt') return { decision: null, rule: null };
    return this.hasDefault ? { decision: this.defaultDecision, rule: 'default' } : { decision: null, rule: null };
  }
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
