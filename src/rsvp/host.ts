/* RSVP on a host, a part of `qos daemon --rsvp on` (docs/rsvp.md, "Hosts"): senders announce
 * their traffic (Path, refreshed every R) and receivers ask for reservations (Resv), through
 * the admin API (`qos rsvp send`, `qos rsvp reserve`); what comes back (path state, errors,
 * confirmations) is kept as numbered events a client can wait on.
 *
 * Whose request it is comes from the kernel: the POLICY_DATA every Resv and Path carries names
 * the caller's user (RFC 3182 AUTH_USER) from its uid; only root may name another user or an
 * application (a manager acting for a program: issue 21). Each uid holds at most
 * MAX_PER_UID senders and as many reservations; the event log is bounded. */

import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Component, Route, RouteRequest } from '../component.js';
import { QosError } from '../errors.js';
import { NameTable } from '../daemon/identity.js';
import { parseRate, parseSize } from '../units.js';
import type { RsvpEngine } from './engine/engine.js';
import type { RsvpEvent } from './engine/types.js';
import type { FilterSpec } from './filter-spec.js';
import type { Flowspec } from './flowspec.js';
import { type NodeCounts, RsvpNode } from './node.js';
import { A_TYPE, P_AUTH_APP, P_AUTH_USER, type PolicyData } from './policy-data.js';
import type { Session } from './session.js';
import type { StyleName } from './style.js';
import type { SenderTspec } from './tspec.js';
import { toJson } from './format.js';

export const MAX_PER_UID = 64;
const MAX_EVENTS = 1000;

/** What the host part needs of its node (node.ts's RsvpNode; tests give an engine on fakes). */
export interface HostNode {
  readonly engine: RsvpEngine;
  counts(): NodeCounts;
  sourceFor(destination: string): string | null;
  close(): Promise<void>;
}

export interface HostOptions {
  refreshMs?: number; k?: number; log?: Logger;
  /** raw IP 46 (default), the UDP encapsulation (a host that may not open raw sockets), or both */
  transport?: 'raw' | 'udp' | 'both';
  /** INTEGRITY keys (RFC 2747; node.ts NodeOptions.keys) and whether a message without one is dropped */
  keys?: Map<string, Uint8Array>; requireIntegrity?: boolean;
  /** opens the node (default: RsvpNode.open on the raw transport) */
  open?: (onEvent: (e: RsvpEvent) => void) => Promise<HostNode>;
}

interface Held { id: number; uid: number; kind: 'sender' | 'reservation'; session: Session; close(): void; what: Record<string, unknown> }

/** POLICY_DATA naming a user and, if given, an application (RFC 3182: AUTH_USER and AUTH_APP,
 * each a CREDENTIAL attribute of ASCII text). */
export function identityPolicy(user: string, app: string | null): PolicyData {
  const el = (pType: typeof P_AUTH_USER | typeof P_AUTH_APP, text: string) => ({ pType, attributes: [{ aType: A_TYPE.CREDENTIAL, subType: 1, text }] });
  return { kind: 'POLICY_DATA', options: '', elements: [el(P_AUTH_USER, user), ...(app ? [el(P_AUTH_APP, app)] : [])] };
}

const text = (v: unknown, what: string): string => {
  if (typeof v === 'string' && v.trim()) return v.trim();
  if (typeof v === 'number') return String(v);
  throw new QosError('QOS_ERR_USAGE', `${what} is missing`);
};
const port = (v: unknown, what: string, zero = false): number => {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (!Number.isInteger(n) || (n as number) < (zero ? 0 : 1) || (n as number) > 65535) throw new QosError('QOS_ERR_USAGE', `${what} is a port number, ${zero ? 0 : 1} to 65535, not ${JSON.stringify(v)}`);
  return n as number;
};
const address = (v: unknown, what: string): string => {
  const a = text(v, what);
  if (!isIP(a)) throw new QosError('QOS_ERR_USAGE', `${what} is an IPv4 or IPv6 address, not ${JSON.stringify(a)}`);
  return a;
};
const protocol = (v: unknown): number => {
  if (v === undefined || v === 'udp' || v === 17) return 17;
  if (v === 'tcp' || v === 6) return 6;
  throw new QosError('QOS_ERR_USAGE', `protocol is udp or tcp, not ${JSON.stringify(v)}`);
};
const rateOf = (v: unknown, what: string): number => {
  const r = typeof v === 'number' ? v : parseRate(text(v, what));
  if (!(r > 0 && Number.isFinite(r))) throw new QosError('QOS_ERR_USAGE', `${what} must be above 0`);
  return r;
};
const sizeOf = (v: unknown, what: string): number => {
  const r = typeof v === 'number' ? v : parseSize(text(v, what));
  if (!(r > 0 && Number.isFinite(r) && r <= 0xffffffff)) throw new QosError('QOS_ERR_USAGE', `${what} must be 1 byte to 4 GB`);
  return Math.ceil(r);
};

/** The session a request names: destination, port, protocol. */
export function sessionOf(b: Record<string, unknown>): Session {
  return { kind: 'SESSION', destination: address(b.destination, 'destination'), protocol: protocol(b.protocol), flags: 0, port: port(b.port, 'port') };
}

/** The token bucket a request gives: rate, bucket, peak (default: none), min and max packet sizes. */
export function bucketOf(b: Record<string, unknown>): Omit<SenderTspec, 'kind'> {
  const M = b.max === undefined ? 1500 : sizeOf(b.max, 'max');
  const m = b.min === undefined ? Math.min(64, M) : sizeOf(b.min, 'min');
  if (m > M) throw new QosError('QOS_ERR_USAGE', `min (${m}) is above max (${M})`);
  const r = rateOf(b.rate, 'rate');
  const p = b.peak === undefined ? Infinity : rateOf(b.peak, 'peak');
  if (p < r) throw new QosError('QOS_ERR_USAGE', 'peak is below rate');
  const bucket = b.bucket === undefined ? Math.max(M, Math.ceil(r / 10)) : sizeOf(b.bucket, 'bucket');
  if (bucket < M) throw new QosError('QOS_ERR_USAGE', `bucket (${bucket}) is below max (${M}): a packet of max bytes would never conform`);
  return { r, b: bucket, p, m, M };
}

/** "ADDR:PORT" or "[ADDR6]:PORT" or ADDR (port 0: any) as a FILTER_SPEC. */
export function filterOf(v: unknown): FilterSpec {
  const s = text(v, 'a sender');
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([^:]+)(?::(\d+))?$/.exec(s) ?? /^([0-9a-fA-F:]+)()$/.exec(s);
  if (!m) throw new QosError('QOS_ERR_USAGE', `a sender is ADDRESS:PORT, [IPv6]:PORT or ADDRESS, not ${JSON.stringify(s)}`);
  return { kind: 'FILTER_SPEC', source: address(m[1], `sender ${s}`), port: m[2] ? port(m[2], `sender ${s}'s port`, true) : 0 };
}

export class RsvpHost implements Component {
  readonly name = 'rsvp';
  private node: HostNode | null = null;
  private readonly held = new Map<number, Held>();
  private nextId = 1;
  private readonly events: { seq: number; at: string; event: RsvpEvent }[] = [];
  private seq = 0;
  /** user names by uid, as the daemon's identity reads them (/etc/passwd, read again when it changes) */
  private readonly users = new NameTable('/etc/passwd');

  constructor(private readonly o: HostOptions = {}) {}

  async start(): Promise<void> {
    const onEvent = (e: RsvpEvent) => this.event(e);
    this.node = this.o.open ? await this.o.open(onEvent)
      : await RsvpNode.open({ role: 'host', raw: this.o.transport !== 'udp', udp: this.o.transport === 'udp' || this.o.transport === 'both', ...(this.o.refreshMs ? { refreshMs: this.o.refreshMs } : {}), ...(this.o.k ? { k: this.o.k } : {}), onEvent, ...(this.o.log ? { log: this.o.log } : {}), ...(this.o.keys ? { keys: this.o.keys, requireIntegrity: this.o.requireIntegrity ?? false } : {}) });
  }

  /** Tears down what it holds (PathTear, ResvTear), then closes. */
  async stop(): Promise<void> {
    for (const h of this.held.values()) h.close();
    this.held.clear();
    await this.node?.close();
    this.node = null;
  }

  private event(e: RsvpEvent): void {
    this.events.push({ seq: ++this.seq, at: new Date().toISOString(), event: e });
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
    this.o.log?.info({ rsvp: JSON.parse(toJson(e)) as unknown }, `rsvp ${e.kind}`);
  }

  private checkRoom(uid: number, kind: Held['kind']): void {
    let n = 0;
    for (const h of this.held.values()) if (h.uid === uid && h.kind === kind) n++;
    if (n >= MAX_PER_UID) throw new QosError('QOS_ERR_CONFLICT', `uid ${uid} holds ${n} RSVP ${kind}s, the most one user may`);
  }

  /** The POLICY_DATA of a request: the caller's user; another user or an application only from root. */
  private policyOf(r: RouteRequest): PolicyData {
    const b = r.body;
    if ((b.user !== undefined || b.app !== undefined) && r.uid !== 0) throw new QosError('QOS_ERR_FORBIDDEN', `only root may name the user or application a reservation is for (uid ${r.uid} asked): yours come from the kernel`);
    const user = b.user === undefined ? this.users.get(r.uid, Date.now()) : text(b.user, 'user');
    const app = b.app === undefined ? null : text(b.app, 'app');
    return identityPolicy(user, app);
  }

  private node_(): HostNode {
    if (!this.node) throw new QosError('QOS_ERR_ENVIRONMENT', 'RSVP is not running');
    return this.node;
  }

  addSender(r: RouteRequest): unknown {
    const b = r.body;
    const session = sessionOf(b);
    const t = bucketOf(b);
    const source = b.source === undefined ? null : address(b.source, 'source');
    this.checkRoom(r.uid, 'sender');
    const node = this.node_();
    // the source is the address the route to the destination leaves from, unless given
    const src = source ?? node.sourceFor(session.destination);
    if (!src) throw new QosError('QOS_ERR_USAGE', `no route to ${session.destination}: no address to send from`);
    const sender = { kind: 'SENDER_TEMPLATE' as const, source: src, port: port(b.sport, 'sport') };
    const h = node.engine.sender({ session, sender, tspec: { kind: 'SENDER_TSPEC', ...t }, policyData: this.policyOf(r) });
    const id = this.nextId++;
    const what = { id, kind: 'sender', uid: r.uid, session, sender, tspec: t };
    this.held.set(id, { id, uid: r.uid, kind: 'sender', session, close: () => h.close(), what });
    return JSON.parse(toJson(what));
  }

  addReservation(r: RouteRequest): unknown {
    const b = r.body;
    const session = sessionOf(b);
    const style = (b.style ?? 'FF') as StyleName;
    if (!['FF', 'SE', 'WF'].includes(style)) throw new QosError('QOS_ERR_USAGE', `style is FF, SE or WF, not ${JSON.stringify(b.style)}`);
    const t = bucketOf(b);
    const service = b.service ?? 'CL';
    let flowspec: Flowspec;
    if (service === 'CL') flowspec = { kind: 'FLOWSPEC', service: 'CL', tspec: t };
    else if (service === 'GS') {
      const R = b.R === undefined ? t.r : rateOf(b.R, 'R');
      if (R < t.r) throw new QosError('QOS_ERR_USAGE', 'R (the Guaranteed rate) is below rate');
      const S = typeof b.S === 'string' && /^\d{1,10}$/.test(b.S) ? Number(b.S) : b.S ?? 0;
      if (!Number.isInteger(S) || (S as number) < 0 || (S as number) > 0xffffffff) throw new QosError('QOS_ERR_USAGE', `S (the slack term) is a whole number of microseconds, not ${JSON.stringify(b.S)}`);
      flowspec = { kind: 'FLOWSPEC', service: 'GS', tspec: t, R, S: S as number };
    } else throw new QosError('QOS_ERR_USAGE', `service is CL (Controlled Load) or GS (Guaranteed), not ${JSON.stringify(service)}`);
    const senders = b.senders === undefined ? [] : Array.isArray(b.senders) ? b.senders.map(filterOf) : [filterOf(b.senders)];
    if (style !== 'WF' && !senders.length) throw new QosError('QOS_ERR_USAGE', `a ${style} reservation names its senders (ADDRESS:PORT)`);
    if (senders.length > 64) throw new QosError('QOS_ERR_USAGE', 'at most 64 senders in one reservation');
    this.checkRoom(r.uid, 'reservation');
    const node = this.node_();
    const descriptors = style === 'FF' ? senders.map((f) => ({ flowspec, filters: [f] })) : [{ flowspec, filters: senders }];
    const h = node.engine.reserve({ session, style, descriptors, confirm: b.confirm === true, policyData: this.policyOf(r) });
    const id = this.nextId++;
    const what = { id, kind: 'reservation', uid: r.uid, session, style, flowspec, senders, seq: this.seq };
    this.held.set(id, { id, uid: r.uid, kind: 'reservation', session, close: () => h.close(), what });
    return JSON.parse(toJson(what));
  }

  remove(r: RouteRequest, id: number, kind: Held['kind']): unknown {
    const h = this.held.get(id);
    if (!h || h.kind !== kind) throw new QosError('QOS_ERR_NOT_FOUND', `no RSVP ${kind} ${id}`);
    if (r.uid !== 0 && r.uid !== h.uid) throw new QosError('QOS_ERR_FORBIDDEN', `RSVP ${kind} ${id} is uid ${h.uid}'s`);
    h.close();
    this.held.delete(id);
    return { deleted: id };
  }

  eventsAfter(seq: number): unknown[] {
    return this.events.filter((e) => e.seq > seq).map((e) => JSON.parse(toJson(e)) as unknown);
  }

  list(): unknown {
    const node = this.node_();
    return JSON.parse(toJson({ held: [...this.held.values()].map((h) => h.what), state: node.engine.state(), counts: { ...node.engine.counts(), ...node.counts() }, last_event: this.seq }));
  }

  status(): Record<string, unknown> {
    if (!this.node) return { rsvp: null };
    return { rsvp: { ...this.node.engine.counts(), ...this.node.counts(), held: this.held.size } };
  }

  readonly routes: Route[] = [{ method: '*', path: '/v1/rsvp', prefix: true, body: true, handle: async (r: RouteRequest) => ({ json: this.answer(r) }) }];

  private answer(r: RouteRequest): unknown {
    const [, , , kind = '', arg, extra] = r.path.split('/');
    if (extra !== undefined) throw new QosError('QOS_ERR_NOT_FOUND', `no route ${r.method} ${r.path}`);
    const id = (t: string) => { if (!/^\d{1,9}$/.test(t)) throw new QosError('QOS_ERR_USAGE', `an RSVP sender or reservation is named by its number, not "${t}"`); return Number(t); };
    switch (`${r.method} ${kind}${arg === undefined ? '' : '/'}`) {
      case 'GET ': return this.list();
      case 'GET events': {
        const after = r.url.searchParams.get('after') ?? '0';
        if (!/^\d{1,12}$/.test(after)) throw new QosError('QOS_ERR_USAGE', `after is an event number, not "${after}"`);
        return this.eventsAfter(Number(after));
      }
      case 'POST senders': return this.addSender(r);
      case 'DELETE senders/': return this.remove(r, id(arg!), 'sender');
      case 'POST reservations': return this.addReservation(r);
      case 'DELETE reservations/': return this.remove(r, id(arg!), 'reservation');
      default: throw new QosError('QOS_ERR_NOT_FOUND', `no route ${r.method} ${r.path}`);
    }
  }
}
