/* From one decoded agent message to a reply: keeps the flow table current, asks the policy
 * engine, and records the decision. No I/O here, so it is tested without sockets. */

import type { CallFacts, Decision, Identity, PolicyEngine, Verdict } from '../policy/engine.js';
import { parseAddrInto, type Addr128 } from '../policy/net.js';
import type { EventName } from '../policy/schema.js';
import type { HandlerName } from '../script/js-sandbox.js';
import type { ScriptOutcome, ScriptStatus } from '../script/pool.js';
import { loadavg } from 'node:os';
import { tokens, type CacheableMessage, type Message, type SockAddr } from '../protocol/messages.js';
import { encodeReply, encodeRing, encodeVersion } from '../protocol/replies.js';
import { decisionClass, type Endpoint, type Flow, type FlowTable } from './flows.js';

export interface DecisionRecord {
  /** When, in ms since the epoch (rendered as ISO time by decisionJson). */
  at: number;
  pid: number;
  user: string;
  exe: string;
  event: EventName;
  fd: number;
  family: Flow['family'];
  type: Flow['type'];
  local: Endpoint | null;
  remote: Endpoint | null;
  rule: string | null;
  decision: Decision | null;
  class: string;
  reply: string;
  /** The agent applied this from its cache and only told us (a `Cached` message). */
  cached: boolean;
  /** What the policy script did with the call, if it has a handler for it. */
  script?: ScriptStatus;
}

/** What a script handler is given: JavaScript takes the event as JSON (and the machine state
 * as JSON, if the handler reads it), Tcl the message's tokens (the paper's procedures take
 * them as arguments). Built only when asked for. */
export interface ScriptRequest {
  /** the call's own facts, a JSON array (eventOf in script/prelude.ts) */
  facts(): string;
  /** who is calling: the same key for every call of a process */
  caller: { key: object; json(): string };
  /** the caller's machine state (StateSource in script/js-sandbox.ts): full, every flow */
  state(full: boolean): string;
  tokens(): string[];
}

/** A policy script, as the decider sees it (script/pool.ts, script/tcl-host.ts). */
export interface ScriptHost {
  readonly handlers: ReadonlySet<HandlerName>;
  decide(handler: HandlerName, uid: number, req: ScriptRequest): Promise<ScriptOutcome>;
}

/** What the decider needs of the running policy. */
export interface PolicyView {
  engine: PolicyEngine;
  /** Published generation (GenerationFile); 0 = agents must not cache. */
  generation: number;
  script?: ScriptHost | null;
}

const HANDLER_OF: Record<EventName, HandlerName | null> = {
  socket: 'Socket', connect: 'Connect', bind: 'Bind', listen: 'Listen', accept: 'Accept', sendto: 'SendTo', setsockopt: null,
};

const FAMILY: Record<number, Flow['family']> = { 2: 'inet', 10: 'inet6' };
const TYPE: Record<number, Flow['type']> = { 1: 'stream', 2: 'dgram', 3: 'raw' };

function protoOf(type: Flow['type'], protocol: number): Flow['proto'] {
  if (protocol === 6 || (protocol === 0 && type === 'stream')) return 'tcp';
  if (protocol === 17 || (protocol === 0 && type === 'dgram')) return 'udp';
  return null;
}

function endpoint(a: SockAddr | null): Endpoint | null {
  return a && a.host ? { address: a.host, port: a.port } : null;
}

/** An endpoint as the engine takes it; an IPv4 address is parsed into `into` (the engine reads
 * the facts of one call and keeps none of them, so each side's array is reused). */
function factEndpoint(e: Endpoint | null, into: Addr128): CallFacts['remote'] {
  if (!e) return undefined;
  const addr = parseAddrInto(e.address, into);
  return addr ? { addr, port: e.port } : undefined;
}

const REMOTE_ADDR: Addr128 = new Uint32Array(4);
const LOCAL_ADDR: Addr128 = new Uint32Array(4);

export { decisionClass };

/** A decision record as the admin API shows it: the time as ISO 8601 text first. */
export function decisionJson(r: DecisionRecord): string {
  const { at, ...rest } = r;
  return JSON.stringify({ time: new Date(at).toISOString(), ...rest });
}

export interface Outcome {
  /** The reply line without newline, or null for notifications. */
  reply: string | null;
  record: DecisionRecord | undefined;
  /** A Cached message from an agent whose cache predates the running policy. */
  stale: boolean;
}

/** The outcome of a notification that records no decision (Close, Cleanup, Shutdown): one
 * object for all of them, never changed (every outcome has the same three fields, so the
 * code that reads them sees one shape). */
const NO_REPLY: Outcome = Object.freeze({ reply: null, record: undefined, stale: false });

const CACHEABLE_EVENTS: ReadonlySet<EventName> = new Set(['socket', 'connect', 'sendto']);

/** Verdicts remembered per process (below); past this many the process's memo starts over. */
const MEMO_MAX = 256;

/** What the engine is given about a cacheable call on f besides its remote address and port
 * (event, family, type, protocol: each one of a few values), as one small number; the memo
 * looks the address and port up under it, without building a key per call. */
function kindKey(event: EventName, f: Flow): number {
  // (comparisons, not a lookup table: a table indexed by these strings is a megamorphic
  // keyed load, a fifth of the memo's cost)
  const e = event === 'socket' ? 0 : event === 'connect' ? 1 : 2;
  const fam = f.family === null ? 0 : f.family === 'inet' ? 1 : 2;
  const type = f.type === null ? 0 : f.type === 'stream' ? 1 : f.type === 'dgram' ? 2 : 3;
  const proto = f.proto === null ? 0 : f.proto === 'tcp' ? 1 : 2;
  return e << 6 | fam << 4 | type << 2 | proto;
}

/** A remembered verdict, and the reply it renders to under the generation it was made in
 * (the record of each cached call carries it: built once, not per call). */
interface Remembered { v: Verdict; generation: number; reply: string }
/** The last call of one event (socket, connect, sendto) a process's memo answered. */
interface LastCall { kind: number; host: string; port: number; r: Remembered }
/** A process's remembered verdicts: kind of call, then remote address, then remote port. */
type Verdicts = Map<number, Map<string, Map<number, Remembered>>>;

export class Decider {
  /** The engine's verdicts on calls agents told us about as Cached (socket, connect, sendto
   * without a script), per process and for one engine: a verdict depends only on who asks, the
   * call's facts and the policy, so a program that connects to the same place over and over
   * has its cached calls decided once, and after that only recorded. */
  private readonly memo = new WeakMap<Identity, { engine: PolicyEngine; verdicts: Verdicts; size: number; last: (LastCall | null)[] }>();
  constructor(private readonly flows: FlowTable, private readonly policy: () => PolicyView, private readonly now: () => number = Date.now) {}

  /** The reply and record for one message; a Promise when a policy script decides it. */
  handle(m: Message, id: Identity, useScript = true): Outcome | Promise<Outcome> {
    const flows = this.flows;
    switch (m.type) {
      case 'Cached':
        return this.cached(m.inner, m.generation, id);
      case 'Startup':
        this.tell('Startup', id, m, () => factsJson('startup', null, null));
        return { reply: encodeVersion(), record: undefined, stale: false };
      case 'Ring':
        // Only the agent server can pass a ring with its reply (agents.ts); from here, none.
        return { reply: encodeRing(0), record: undefined, stale: false };
      case 'Close': {
        const f = flows.close(id.pid, m.fd);
        this.tell('Close', id, m, () => factsJson('close', m.fd, f ?? null));
        return NO_REPLY;
      }
      case 'Cleanup':
        flows.closePid(id.pid, id.start);
        this.tell('Cleanup', id, m, () => factsJson('cleanup', null, null));
        return NO_REPLY;
      case 'Shutdown': {
        const f = flows.get(id.pid, m.fd);
        if (f) flows.touch(f);
        this.tell('Shutdown', id, m, () => factsJson('shutdown', m.fd, f ?? null, m.how));
        return NO_REPLY;
      }
      case 'Socket':
        return this.decide('socket', this.callFlow(m, id), id, useScript, m);
      case 'Connect':
        return this.decide('connect', this.callFlow(m, id), id, useScript, m);
      case 'Bind': {
        const f = this.flowFor(id, m.fd, m.address.family);
        f.local = endpoint(m.address);
        return this.decide('bind', f, id, useScript, m);
      }
      case 'Listen':
        return this.decide('listen', this.flowFor(id, m.fd, 0), id, useScript, m);
      case 'SendTo':
        return this.decide('sendto', this.callFlow(m, id), id, useScript, m);
      case 'Accept': {
        const lf = this.flowFor(id, m.fd, m.address?.family ?? 0);
        const f = flows.open({ pid: id.pid, fd: m.newfd, family: lf.family, type: lf.type ?? 'stream', proto: lf.proto ?? 'tcp', protocol: lf.protocol, exe: id.exe, user: id.user, uid: id.uid, start: id.start });
        f.local = lf.local;
        f.remote = endpoint(m.address);
        return this.decide('accept', f, id, useScript, m);
      }
      case 'SetSockOpt': {
        const f = this.flowFor(id, m.fd, 0);
        if (m.optname === 15 /* SO_PRIORITY */) f.appPriority = m.value;
        else f.appTos = m.value & 0xff;
        return this.decide('setsockopt', f, id, false, m);
      }
    }
  }

  /** A call the agent decided from its cache and only told us of: recorded like the call
   * itself, without a reply (the agent applied the decision already). Only declarative
   * verdicts are cached, so no script is asked; the verdict comes from the memo. */
  private cached(m: CacheableMessage, generation: number, id: Identity): Outcome {
    const policy = this.policy();
    const event: EventName = m.type === 'Socket' ? 'socket' : m.type === 'Connect' ? 'connect' : 'sendto';
    const f = this.callFlow(m, id);
    const scripted = policy.script?.handlers.has(m.type) ?? false;
    const out = this.conclude(event, f, id, policy, null, scripted, true);
    out.record!.cached = true;
    // (conclude's outcome is this call's own: reused, one object fewer per cached call)
    out.reply = null;
    out.stale = generation !== policy.generation;
    return out;
  }

  /** The flow a Socket, Connect or SendTo is on, brought up to date with the call. */
  private callFlow(m: CacheableMessage, id: Identity): Flow {
    if (m.type === 'Socket') {
      const type = TYPE[m.sockType] ?? null;
      return this.flows.open({ pid: id.pid, fd: m.fd, family: FAMILY[m.family] ?? null, type, proto: protoOf(type, m.protocol), protocol: m.protocol, exe: id.exe, user: id.user, uid: id.uid, start: id.start });
    }
    const f = this.flowFor(id, m.fd, m.address.family);
    f.remote = endpoint(m.address);
    if (m.type === 'SendTo') f.destinations++;
    return f;
  }

  /** The flow for pid/fd; one the agent never reported (untracked before) is created. */
  private flowFor(id: Identity, fd: number, family: number): Flow {
    return this.flows.get(id.pid, fd) ?? this.flows.open({ pid: id.pid, fd, family: FAMILY[family] ?? null, type: null, proto: null, protocol: 0, exe: id.exe, user: id.user, uid: id.uid, start: id.start });
  }

  /** Tells the script about a notification (its handler keeps state; nothing waits for it). */
  private tell(handler: HandlerName, id: Identity, m: Message, facts: () => string): void {
    const script = this.policy().script;
    if (script?.handlers.has(handler)) void script.decide(handler, id.uid, this.request(id, m, facts));
  }

  private request(id: Identity, m: Message, facts: () => string): ScriptRequest {
    return { facts, caller: { key: id, json: () => callerJson(id) }, state: (full) => this.stateJson(id, full), tokens: () => scriptTokens(m, id) };
  }

  /** The machine state a handler may read, now, asked for only by a handler that reads it:
   * how many flows the caller has, by class, and the load averages (a cost that does not
   * grow with the caller's flows); or, full, each of the caller's flows (one that does). */
  private stateJson(id: Identity, full: boolean): string {
    if (full) return JSON.stringify({ flows: this.flows.ofUser(id.uid).map(flowFacts) });
    const { flows, classes } = this.flows.userCounts(id.uid);
    let byClass = '';
    for (const [cls, n] of classes) byClass += `${byClass ? ',' : ''}${str(cls)}:${n}`;
    const [a, b, c] = this.loadavg();
    return `{"count":${flows},"classes":{${byClass}},"loadavg":[${a},${b},${c}]}`;
  }

  private load = { at: 0, value: [0, 0, 0] };
  /** The load averages, read at most once a second (they move slower than that). */
  private loadavg(): number[] {
    const now = this.now();
    if (now - this.load.at > 1000) this.load = { at: now, value: loadavg() };
    return this.load.value;
  }

  private decide(event: EventName, f: Flow, id: Identity, useScript: boolean, m: Message): Outcome | Promise<Outcome> {
    const policy = this.policy();
    const handler = HANDLER_OF[event];
    const script = policy.script;
    if (script && handler && script.handlers.has(handler)) {
      if (!useScript) return this.conclude(event, f, id, policy, null, true);
      const facts = factsJson(event, f.fd, f); // now: before this call's decision
      return script.decide(handler, id.uid, this.request(id, m, () => facts)).then((o) => this.conclude(event, f, id, policy, o, true));
    }
    return this.conclude(event, f, id, policy, null, false);
  }

  /** The engine's verdict on a call on f. */
  private verdict(event: EventName, f: Flow, id: Identity, engine: PolicyEngine): Verdict {
    return engine.decide(id, {
      event,
      family: f.family ?? undefined,
      type: f.type ?? undefined,
      proto: f.proto ?? undefined,
      remote: factEndpoint(f.remote, REMOTE_ADDR),
      local: factEndpoint(f.local, LOCAL_ADDR),
    });
  }

  /** verdict() with its reply, remembered for the process (memo above). A call with a local
   * address (a bound socket's: never one an agent caches) is not remembered. */
  private remembered(event: EventName, f: Flow, id: Identity, policy: PolicyView): Remembered {
    const engine = policy.engine;
    if (f.local) return this.remember(this.verdict(event, f, id, engine), policy.generation);
    let m = this.memo.get(id);
    if (!m || m.engine !== engine || m.size >= MEMO_MAX) this.memo.set(id, (m = { engine, verdicts: new Map(), size: 0, last: [null, null, null] }));
    const kind = kindKey(event, f), host = f.remote ? f.remote.address : '', port = f.remote ? f.remote.port : -1;
    // the same call as the last of its event (a program connecting to one place over and
    // over): no map to look in (a ring record's address is the same string each time)
    const e = kind >> 6, last = m.last[e];
    let r: Remembered | undefined;
    if (last && last.kind === kind && last.port === port && last.host === host) r = last.r;
    else {
      const byHost = m.verdicts.get(kind) ?? m.verdicts.set(kind, new Map()).get(kind)!;
      const byPort = byHost.get(host) ?? byHost.set(host, new Map()).get(host)!;
      r = byPort.get(port);
      if (!r) {
        byPort.set(port, (r = this.remember(this.verdict(event, f, id, engine), policy.generation)));
        m.size++;
      }
      m.last[e] = { kind, host, port, r };
    }
    if (r.generation !== policy.generation) {
      // a generation published for the same engine: the verdict holds, its reply says the new one
      r.generation = policy.generation;
      r.reply = encodeReply(r.v.decision, policy.generation);
    }
    return r;
  }

  private remember(v: Verdict, generation: number): Remembered {
    return { v, generation, reply: encodeReply(v.decision, generation) };
  }

  /** Records the verdict on the flow and builds the reply: the script's decision if it made
   * one, else the rules'. Only a call no script handles (not `scripted`) may be cached by
   * the agent. The memo is read and filled for a cached call only (a question's destination
   * may never come back, and remembering it costs more than it saves). */
  private conclude(event: EventName, f: Flow, id: Identity, policy: PolicyView, o: ScriptOutcome | null, scripted: boolean, cached = false): Outcome {
    let v: Verdict;
    let reply: string | null = null;
    if (o && o.decision !== undefined) v = { decision: o.decision, rule: 'script' };
    else {
      if (cached && !scripted) {
        const r = this.remembered(event, f, id, policy);
        v = r.v;
        reply = r.reply;
      } else v = this.verdict(event, f, id, policy.engine);
      // The default fills in for sockets nothing decided yet; it never undoes a rule's choice
      // made at an earlier call on the same socket (e.g. a Socket rule, then a SendTo).
      if (v.rule === 'default' && f.rule && f.rule !== 'default') {
        v = { decision: null, rule: null };
        reply = null;
      }
    }
    if (v.rule !== null) this.flows.setVerdict(f, v.decision, v.rule);
    this.flows.touch(f);
    // A declarative verdict on a call depends only on who asks, the call's facts and the
    // policy: the agent may reuse it for identical calls until the generation changes.
    reply ??= encodeReply(v.decision, CACHEABLE_EVENTS.has(event) && !scripted ? policy.generation : 0);
    const record: DecisionRecord = {
      at: this.now(), pid: id.pid, user: id.user, exe: id.exe, event, fd: f.fd,
      family: f.family, type: f.type, local: f.local, remote: f.remote, rule: v.rule, decision: v.decision,
      // setVerdict has just given the flow this class (decisionClass of the decision)
      class: v.rule !== null ? f.class : decisionClass(v.decision), reply, cached: false,
    };
    if (o) record.script = o.status;
    return { reply, record, stale: false };
  }
}

/** A flow as a script sees it in `qos.flows()` (docs/scripts.md). */
function flowFacts(f: Flow): Record<string, unknown> {
  return {
    pid: f.pid, fd: f.fd, exe: f.exe, family: f.family, type: f.type, proto: f.proto, protocol: f.protocol,
    local: f.local, remote: f.remote, rule: f.rule, class: f.class, dscp: dscpOf(f.decision),
  };
}

/** The DSCP a decision puts on the wire, or null (none: nothing, a priority, a DENY). */
export function dscpOf(d: Decision | null): number | null {
  return d?.dscp ?? (d?.tos !== undefined ? d.tos >> 2 : null);
}

/** Printable ASCII other than " and \: quoted as it is. */
const PLAIN = /^[ !#-[\]-~]*$/;
/** A string as JSON: the common case (names, addresses) without JSON.stringify, which cost
 * ~0.3 us a string here, seven strings a call. */
const str = (v: string | null) => (v === null ? 'null' : PLAIN.test(v) ? `"${v}"` : JSON.stringify(v));
const pair = (e: Endpoint | null) => (e ? `[${str(e.address)},${e.port}]` : 'null');
const NO_FLOW = ',null,null,null,null,null,null,null,null,null';

/** An event's own facts for a script, as the JSON array eventOf (script/prelude.ts) reads:
 * event, fd, family, type, proto, protocol, local, remote, rule, class, dscp[, how]. A
 * positional array because QuickJS parses it in half the time of the keyed object; written
 * by hand because JSON.stringify of the array cost ~5 us per call under load here. */
function factsJson(event: string, fd: number | null, f: Flow | null, how?: number): string {
  const tail = how === undefined ? ']' : `,${how}]`;
  if (!f) return `[${str(event)},${fd ?? 'null'}${NO_FLOW}${tail}`;
  return `[${str(event)},${f.fd},${str(f.family)},${str(f.type)},${str(f.proto)},${f.protocol},${pair(f.local)},${pair(f.remote)},`
    + `${str(f.rule)},${str(f.class)},${dscpOf(f.decision) ?? 'null'}${tail}`;
}

/** The message's tokens as a Tcl procedure receives them, in the paper's order, but with the
 * kernel's pid, uid and command line in place of those the agent wrote: a client can write
 * anything there (uid 0, another user's uid), and a script must not take it for the truth. */
function scriptTokens(m: Message, id: Identity): string[] {
  const t = tokens(m);
  t[1] = String(id.pid);
  t[2] = String(id.uid);
  t[3] = id.cmdline;
  return t;
}

const callers = new WeakMap<Identity, string>();
/** Who is calling, as a JSON object: built once per identity (identities are shared by a
 * process's calls), and sent to a script worker once per identity (script/pool.ts). */
function callerJson(id: Identity): string {
  let s = callers.get(id);
  if (s === undefined) {
    s = JSON.stringify({ pid: id.pid, uid: id.uid, gid: id.gid, user: id.user, group: id.group, exe: id.exe, cmdline: id.cmdline, unit: id.unit });
    callers.set(id, s);
  }
  return s;
}
