/* RSVP on a host, a part of `qos daemon --rsvp on` (docs/rsvp.md, "Hosts"): senders announce
 * their traffic (Path, refreshed every R) and receivers ask for reservations (Resv), through
 * the admin API (`qos rsvp send|reserve|open|activate|deactivate|close`), the policy's
 * `reserve` action (attach.ts) or AutoRESV; the sessions are the manager's (manager.ts). What
 * comes back is kept twice: the protocol's events (path state, errors, confirmations) and the
 * status notifications of seed 002's FD_QOS (status.ts), each numbered, for a client to wait
 * on or follow.
 *
 * On a sending host with traffic control, a reservation that reaches this host is installed on
 * the interface the session leaves by (tc-install.ts): its flow is marked above best effort
 * from then on, and back to best effort when it is torn down (seed 003: "marked for priority
 * only while the network approves"). The host admits it first against the share of its own
 * link (`--rsvp-link`); a refusal there is an ADMISSION_FAILURE here, and a ResvErr toward the
 * receiver.
 *
 * Whose request it is comes from the kernel: the POLICY_DATA every Resv and Path carries names
 * the caller's user (RFC 3182 AUTH_USER) from its uid; only root may name another user or an
 * application (a manager acting for a program: issue 21). Each uid holds at most
 * MAX_PER_UID senders and as many reservations; the event log is bounded. */

import { isIP } from 'node:net';
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { Component, Route, RouteRequest } from '../component.js';
import { QosError } from '../errors.js';
import { followStream } from '../daemon/follow.js';
import { NameTable } from '../daemon/identity.js';
import type { TrafficControl } from '../tc/control.js';
import { parseDurationUs, parseRate, parseSize } from '../units.js';
import { LinkAdmission } from './admission.js';
import type { RsvpEngine } from './engine/engine.js';
import type { Admission, Reservation, RsvpEvent, TrafficInstaller } from './engine/types.js';
import type { FilterSpec } from './filter-spec.js';
import type { TokenBucket } from './intserv.js';
import type { SenderTspec } from './tspec.js';
import { RsvpManager, type Managed, type ReceiverParams } from './manager.js';
import { type NodeCounts, RsvpNode } from './node.js';
import { A_TYPE, P_AUTH_APP, P_AUTH_USER, type PolicyData } from './policy-data.js';
import type { Session } from './session.js';
import type { StatusEvent } from './status.js';
import type { StyleName } from './style.js';
import { reserveServiceNamed } from './reserve-request.js';
import { initialAdspec } from './support.js';
import { TcInstaller } from './tc-install.js';
import { toJson } from './format.js';

export const MAX_PER_UID = 64;
const MAX_EVENTS = 1000;

/** What the host part needs of its node (node.ts's RsvpNode; tests give an engine on fakes). */
export interface HostNode {
  readonly engine: RsvpEngine;
  counts(): NodeCounts;
  sourceFor(destination: string): string | null;
  /** the interface toward destination and its MTU (for the ADSPEC a sender starts) */
  linkFor?(destination: string): { ifname: string; mtu: number | null } | null;
  close(): Promise<void>;
}

export interface HostOptions {
  refreshMs?: number; k?: number; log?: Logger;
  /** raw IP 46 (default), the UDP encapsulation (a host that may not open raw sockets), or both */
  transport?: 'raw' | 'udp' | 'both';
  /** INTEGRITY keys (RFC 2747; node.ts NodeOptions.keys) and whether a message without one is dropped */
  keys?: Map<string, Uint8Array>; requireIntegrity?: boolean;
  /** opens the node (default: RsvpNode.open on the raw transport) */
  open?: (onEvent: (e: RsvpEvent) => void, traffic?: TrafficInstaller, admission?: Admission) => Promise<HostNode>;
  /** the daemon's traffic control: a reservation reaching this host as a sender is installed
   * (and its flow marked) on the interface the session leaves by; none: nothing is marked */
  tc?: TrafficControl;
  /** this host's links, bytes/s, and the share of each reservations may take (--rsvp-link,
   * --rsvp-share): admission on the host's own link; a link not listed admits what comes */
  links?: Map<string, number>; share?: number;
  /** answer a Path for a local destination nobody registered for (seed 001's AutoRESV) */
  autoResv?: { service: 'CL' | 'GS'; delayS: number | null } | null;
  /** the daemon's metrics registry */
  registry?: Registry;
  /** a notification about a session made for a program's socket (attach.ts) */
  onProgramStatus?: (e: StatusEvent, m: Managed) => void;
}

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

const MAX_NOTIFICATIONS = 1000;

/** Admission on this host's own links (LinkAdmission's), telling the manager of each refusal;
 * an interface with no link rate given admits what comes (the network decides). */
class HostAdmission implements Admission {
  private readonly inner: LinkAdmission;
  constructor(private readonly links: Map<string, number>, share: number, private readonly refused: (session: Session, code: number, reason: string) => void) {
    this.inner = new LinkAdmission({ links: Object.fromEntries([...links].map(([dev, rate]) => [dev, { rate, share }])) });
  }
  admit(req: Parameters<Admission['admit']>[0]): ReturnType<Admission['admit']> {
    if (!this.links.has(req.ifname)) return { ok: true };
    const v = this.inner.admit(req);
    if (!v.ok) this.refused(req.session, v.code, v.reason);
    return v;
  }
  release(key: string): void { this.inner.release(key); }
}

/** This host's traffic control for reservations that reach it as a sender, telling the manager
 * what is installed (marked) and what failed. */
class HostTraffic implements TrafficInstaller {
  constructor(private readonly inner: TcInstaller, private readonly manager: () => RsvpManager) {}
  async update(r: Reservation): Promise<void> {
    try {
      await this.inner.update(r);
    } catch (e) {
      this.manager().localRefusal(r.session, 'TRAFFIC_CTRL_ERROR', `traffic control on ${r.ifname} refused the reservation: ${e instanceof Error ? e.message : String(e)}`);
      throw e;
    }
    const h = this.inner.get(r.key);
    if (h) this.manager().setInstalled(r.session, r.style, r.filters, { flow: h.flow, key: r.key });
  }
  async remove(key: string): Promise<void> {
    this.manager().clearInstalled(key);
    await this.inner.remove(key);
  }
}

export class RsvpHost implements Component {
  readonly name = 'rsvp';
  private node: HostNode | null = null;
  readonly manager: RsvpManager;
  private readonly events: { seq: number; at: string; event: RsvpEvent }[] = [];
  private seq = 0;
  private readonly notes: StatusEvent[] = [];
  private noteSeq = 0;
  private readonly followers = new Set<(e: StatusEvent) => void>();
  private readonly counter: Counter<'code'> | null;
  /** user names by uid, as the daemon's identity reads them (/etc/passwd, read again when it changes) */
  private readonly users = new NameTable('/etc/passwd');

  constructor(private readonly o: HostOptions = {}) {
    this.manager = new RsvpManager({
      engine: () => this.node_().engine,
      notify: (e, m) => this.notify(e, m),
      autoResv: o.autoResv ?? null,
      hostPolicy: () => identityPolicy(this.users.get(0, Date.now()), null),
      // the ADSPEC a sender starts (RFC 2210 3.3): the routers on the way compose their terms in
      adspecFor: (destination) => {
        const link = this.node?.linkFor?.(destination) ?? null;
        const rate = link ? this.o.links?.get(link.ifname) : undefined;
        return initialAdspec({ mtu: link?.mtu ?? 1500, ...(rate ? { linkRate: rate } : {}) });
      },
    });
    this.counter = o.registry ? new Counter({ name: 'qosd_rsvp_notifications_total', help: 'RSVP status notifications (seed 002\'s FD_QOS codes), by code', labelNames: ['code'], registers: [o.registry] }) : null;
  }

  async start(): Promise<void> {
    const onEvent = (e: RsvpEvent) => this.event(e);
    const traffic = this.o.tc ? new HostTraffic(new TcInstaller(this.o.tc, (r) => this.manager.markFor(r.session, r.style, r.filters)), () => this.manager) : undefined;
    const admission = this.o.links?.size ? new HostAdmission(this.o.links, this.o.share ?? 0.9, (session, code, reason) => this.manager.localRefusal(session, code === 1 ? 'ADMISSION_FAILURE' : 'POLICY_FAILURE', `this host refused the reservation: ${reason}`)) : undefined;
    if (this.o.tc && this.o.links) for (const [dev, rate] of this.o.links) await this.o.tc.setInterface(dev, { rate });
    this.node = this.o.open ? await this.o.open(onEvent, traffic, admission)
      : await RsvpNode.open({
        role: 'host', raw: this.o.transport !== 'udp', udp: this.o.transport === 'udp' || this.o.transport === 'both',
        ...(this.o.refreshMs ? { refreshMs: this.o.refreshMs } : {}), ...(this.o.k ? { k: this.o.k } : {}), onEvent,
        ...(traffic ? { traffic } : {}), ...(admission ? { admission } : {}), ...(this.o.links ? { rates: this.o.links } : {}),
        ...(this.o.log ? { log: this.o.log } : {}), ...(this.o.keys ? { keys: this.o.keys, requireIntegrity: this.o.requireIntegrity ?? false } : {}),
      });
  }

  /** Tears down what it holds (PathTear, ResvTear), then closes. */
  async stop(): Promise<void> {
    if (this.node) this.manager.closeAll();
    await this.node?.close();
    this.node = null;
  }

  private event(e: RsvpEvent): void {
    this.events.push({ seq: ++this.seq, at: new Date().toISOString(), event: e });
    if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
    this.o.log?.info({ rsvp: JSON.parse(toJson(e)) as unknown }, `rsvp ${e.kind}`);
    this.manager.onEngine(e);
  }

  private notify(e: Omit<StatusEvent, 'seq' | 'at'>, m: Managed | null): void {
    const n: StatusEvent = { seq: ++this.noteSeq, at: new Date().toISOString(), ...e };
    this.notes.push(n);
    if (this.notes.length > MAX_NOTIFICATIONS) this.notes.splice(0, this.notes.length - MAX_NOTIFICATIONS);
    this.counter?.inc({ code: n.code });
    this.o.log?.info({ rsvp_status: n.code, id: n.id, session: n.session, reason: n.reason }, `rsvp status ${n.code}`);
    for (const f of this.followers) f(n);
    if (m?.origin === 'policy') this.o.onProgramStatus?.(n, m);
  }

  private checkRoom(uid: number, role: Managed['role']): void {
    let n = 0;
    for (const m of this.manager.all()) if (m.uid === uid && m.role === role && m.origin !== 'auto') n++; // AutoRESV's are bounded apart (manager.ts MAX_AUTO)
    if (n >= MAX_PER_UID) throw new QosError('QOS_ERR_CONFLICT', `uid ${uid} holds ${n} RSVP ${role === 'sender' ? 'senders' : 'reservations'}, the most one user may`);
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

  /** The address this host sends from toward a destination, or null (not running, no route). */
  sourceFor(destination: string): string | null {
    return this.node?.sourceFor(destination) ?? null;
  }

  /** A sender for a program's socket (attach.ts): the policy's, in the program's user's name and
   * its executable's (POLICY_DATA AUTH_USER, AUTH_APP). Null: its user holds MAX_PER_UID already. */
  /** The rate of this host's link toward a destination, bytes/s, when --rsvp-link gives it. */
  linkRateFor(destination: string): number | null {
    const link = this.node?.linkFor?.(destination);
    return (link && this.o.links?.get(link.ifname)) ?? null;
  }

  openForProgram(a: { uid: number; program: NonNullable<Managed['program']>; session: Session; source: string; sport: number; tspec: TokenBucket; dscp: number | null; tcp?: Managed['tcp'] }): Managed | null {
    if (!this.node) return null;
    try { this.checkRoom(a.uid, 'sender'); } catch { return null; }
    const app = a.program.exe.split('/').pop() || a.program.exe;
    return this.manager.open({
      uid: a.uid, role: 'sender', origin: 'policy', program: a.program, dscp: a.dscp, tcp: a.tcp ?? null,
      policy: identityPolicy(this.users.get(a.uid, Date.now()), app),
      sender: { session: a.session, sender: { kind: 'SENDER_TEMPLATE', source: a.source, port: a.sport }, tspec: a.tspec },
    }, true);
  }

  /** The sender params of a request: the session, this sender's address and port, its TSpec. */
  private senderOf(b: Record<string, unknown>): NonNullable<Managed['sender']> {
    const session = sessionOf(b);
    const t = bucketOf(b);
    const source = b.source === undefined ? null : address(b.source, 'source');
    // the source is the address the route to the destination leaves from, unless given
    const src = source ?? this.node_().sourceFor(session.destination);
    if (!src) throw new QosError('QOS_ERR_USAGE', `no route to ${session.destination}: no address to send from`);
    return { session, sender: { kind: 'SENDER_TEMPLATE', source: src, port: port(b.sport, 'sport') }, tspec: t };
  }

  /** The receiver params of a request. Raw: the TSpec given (rate, bucket...); support: the
   * bandwidth r and the delay W, the rest from the Path. */
  private receiverOf(b: Record<string, unknown>, legacy: boolean): ReceiverParams {
    const session = sessionOf(b);
    const style = b.style === undefined || b.style === null ? (legacy ? 'FF' : null) : b.style as StyleName;
    if (style !== null && !['FF', 'SE', 'WF'].includes(style)) throw new QosError('QOS_ERR_USAGE', `style is FF, SE or WF, not ${JSON.stringify(b.style)}`);
    const service = b.service === undefined ? 'CL' : reserveServiceNamed(b.service, 'service');
    const mode = b.mode === undefined ? (b.rate !== undefined ? 'raw' : 'support') : b.mode;
    if (mode !== 'raw' && mode !== 'support') throw new QosError('QOS_ERR_USAGE', `mode is raw (every parameter) or support (bandwidth and delay), not ${JSON.stringify(b.mode)}`);
    const tspec = b.rate !== undefined && mode === 'raw' ? bucketOf(b) : null;
    let R: number | null = null, S = 0;
    if (service === 'GS' && mode === 'raw') {
      R = b.R === undefined ? null : rateOf(b.R, 'R');
      if (R !== null && tspec && R < tspec.r) throw new QosError('QOS_ERR_USAGE', 'R (the Guaranteed rate) is below rate');
      const Sv = typeof b.S === 'string' && /^\d{1,10}$/.test(b.S) ? Number(b.S) : b.S ?? 0;
      if (!Number.isInteger(Sv) || (Sv as number) < 0 || (Sv as number) > 0xffffffff) throw new QosError('QOS_ERR_USAGE', `S (the slack term) is a whole number of microseconds, not ${JSON.stringify(b.S)}`);
      S = Sv as number;
    }
    const bandwidth = mode === 'support' && b.bandwidth !== undefined ? rateOf(b.bandwidth, 'bandwidth') : null;
    const delayS = mode === 'support' && b.delay !== undefined ? delayOf(b.delay) : null;
    if (mode === 'support' && service === 'GS' && delayS === null) throw new QosError('QOS_ERR_USAGE', 'a Guaranteed reservation in support mode needs the delay W it must keep (e.g. delay 50ms): R follows from it');
    const senders = b.senders === undefined ? [] : Array.isArray(b.senders) ? b.senders.map(filterOf) : [filterOf(b.senders)];
    if (style !== null && style !== 'WF' && !senders.length && tspec) throw new QosError('QOS_ERR_USAGE', `a ${style} reservation names its senders (ADDRESS:PORT)`);
    if (senders.length > 64) throw new QosError('QOS_ERR_USAGE', 'at most 64 senders in one reservation');
    const autoResv = b.auto_resv === undefined ? tspec === null : b.auto_resv === true;
    if (b.auto_resv !== undefined && typeof b.auto_resv !== 'boolean') throw new QosError('QOS_ERR_USAGE', 'auto_resv is true or false');
    return { session, service, mode, style, senders, tspec, R, S, bandwidth, delayS, autoResv, confirm: b.confirm === true };
  }

  addSender(r: RouteRequest): unknown {
    const sender = this.senderOf(r.body);
    this.checkRoom(r.uid, 'sender');
    const m = this.manager.open({ uid: r.uid, role: 'sender', origin: 'admin', policy: this.policyOf(r), program: null, dscp: null, sender }, true);
    return JSON.parse(toJson({ id: m.id, kind: 'sender', uid: r.uid, session: sender.session, sender: sender.sender, tspec: sender.tspec }));
  }

  addReservation(r: RouteRequest): unknown {
    const receiver = this.receiverOf(r.body, true);
    if (!receiver.tspec) throw new QosError('QOS_ERR_USAGE', 'rate is missing');
    this.checkRoom(r.uid, 'receiver');
    const m = this.manager.open({ uid: r.uid, role: 'receiver', origin: 'admin', policy: this.policyOf(r), program: null, dscp: null, receiver }, true);
    const style = receiver.style ?? 'FF';
    const flowspec = receiver.service === 'CL' ? { kind: 'FLOWSPEC', service: 'CL', tspec: receiver.tspec } : { kind: 'FLOWSPEC', service: 'GS', tspec: receiver.tspec, R: receiver.R ?? receiver.tspec.r, S: receiver.S };
    return JSON.parse(toJson({ id: m.id, kind: 'reservation', uid: r.uid, session: receiver.session, style, flowspec, senders: receiver.senders, seq: this.seq }));
  }

  /** POST /v1/rsvp/sessions: a session as sender or receiver, active unless `active: false`. */
  openSession(r: RouteRequest): unknown {
    const b = r.body;
    if (b.role !== 'sender' && b.role !== 'receiver') throw new QosError('QOS_ERR_USAGE', `role is sender or receiver, not ${JSON.stringify(b.role)}`);
    if (b.active !== undefined && typeof b.active !== 'boolean') throw new QosError('QOS_ERR_USAGE', 'active is true or false');
    const common = { uid: r.uid, origin: 'admin' as const, policy: this.policyOf(r), program: null, dscp: null };
    let m: Managed;
    if (b.role === 'sender') {
      const sender = this.senderOf(b);
      this.checkRoom(r.uid, 'sender');
      m = this.manager.open({ ...common, role: 'sender', sender }, b.active !== false);
    } else {
      const receiver = this.receiverOf(b, false);
      this.checkRoom(r.uid, 'receiver');
      m = this.manager.open({ ...common, role: 'receiver', receiver }, b.active !== false);
    }
    return { ...JSON.parse(toJson(this.manager.json(m))) as Record<string, unknown>, notification_seq: this.noteSeq };
  }

  private owned(r: RouteRequest, id: number, role?: Managed['role']): Managed {
    const m = this.manager.get(id);
    const what = role === undefined ? 'session' : role === 'sender' ? 'sender' : 'reservation';
    if (!m || (role !== undefined && m.role !== role)) throw new QosError('QOS_ERR_NOT_FOUND', `no RSVP ${what} ${id}`);
    if (r.uid !== 0 && r.uid !== m.uid) throw new QosError('QOS_ERR_FORBIDDEN', `RSVP ${what} ${id} is uid ${m.uid}'s`);
    return m;
  }

  remove(r: RouteRequest, id: number, role?: Managed['role']): unknown {
    this.owned(r, id, role);
    this.manager.close(id);
    return { deleted: id };
  }

  eventsAfter(seq: number): unknown[] {
    return this.events.filter((e) => e.seq > seq).map((e) => JSON.parse(toJson(e)) as unknown);
  }

  notificationsAfter(seq: number): StatusEvent[] {
    return this.notes.filter((e) => e.seq > seq);
  }

  list(): unknown {
    const node = this.node_();
    const all = this.manager.all();
    const held = all.filter((m) => m.origin === 'admin').map((m) => m.role === 'sender'
      ? { id: m.id, kind: 'sender', uid: m.uid, session: m.sender!.session, sender: m.sender!.sender, tspec: m.sender!.tspec, active: m.active }
      : { id: m.id, kind: 'reservation', uid: m.uid, session: m.receiver!.session, style: m.receiver!.style, senders: m.receiver!.senders, active: m.active });
    return JSON.parse(toJson({ held, sessions: all.map((m) => this.manager.json(m)), state: node.engine.state(), counts: { ...node.engine.counts(), ...node.counts() }, last_event: this.seq, last_notification: this.noteSeq }));
  }

  status(): Record<string, unknown> {
    if (!this.node) return { rsvp: null };
    const all = this.manager.all();
    return { rsvp: { ...this.node.engine.counts(), ...this.node.counts(), held: all.length, sessions: all.length, active: all.filter((m) => m.active).length } };
  }

  readonly routes: Route[] = [
    { method: 'GET', path: '/v1/rsvp/notifications', handle: (r: RouteRequest) => ({ stream: (req, res) => this.follow(r, req, res) }) },
    { method: '*', path: '/v1/rsvp', prefix: true, body: true, handle: async (r: RouteRequest) => ({ json: this.answer(r) }) },
  ];

  /** GET /v1/rsvp/notifications?after=N[&follow=1]: newline-delimited JSON, then (follow) each new one. */
  private follow(r: RouteRequest, req: NodeJS.EventEmitter, res: ServerResponse): void {
    const after = r.url.searchParams.get('after') ?? '0';
    if (!/^\d{1,12}$/.test(after)) throw new QosError('QOS_ERR_USAGE', `after is a notification number, not "${after}"`);
    followStream(req, res, {
      first: this.notificationsAfter(Number(after)), render: (n) => toJson(n, 0), follow: r.url.searchParams.get('follow') === '1', what: 'notifications',
      subscribe: (push) => { this.followers.add(push); return () => this.followers.delete(push); },
    });
  }

  private answer(r: RouteRequest): unknown {
    const [, , , kind = '', arg, verb, extra] = r.path.split('/');
    if (extra !== undefined) throw new QosError('QOS_ERR_NOT_FOUND', `no route ${r.method} ${r.path}`);
    const id = (t: string) => { if (!/^\d{1,9}$/.test(t)) throw new QosError('QOS_ERR_USAGE', `an RSVP session, sender or reservation is named by its number, not "${t}"`); return Number(t); };
    switch (`${r.method} ${kind}${arg === undefined ? '' : '/'}${verb === undefined ? '' : verb}`) {
      case 'GET ': return this.list();
      case 'GET events': {
        const after = r.url.searchParams.get('after') ?? '0';
        if (!/^\d{1,12}$/.test(after)) throw new QosError('QOS_ERR_USAGE', `after is an event number, not "${after}"`);
        return this.eventsAfter(Number(after));
      }
      case 'POST senders': return this.addSender(r);
      case 'DELETE senders/': return this.remove(r, id(arg!), 'sender');
      case 'POST reservations': return this.addReservation(r);
      case 'DELETE reservations/': return this.remove(r, id(arg!), 'receiver');
      case 'GET sessions': this.node_(); return this.manager.all().filter((m) => r.uid === 0 || m.uid === r.uid).map((m) => JSON.parse(toJson(this.manager.json(m))) as unknown);
      case 'POST sessions': return this.openSession(r);
      case 'DELETE sessions/': return this.remove(r, id(arg!));
      case 'POST sessions/activate': this.owned(r, id(arg!)); return JSON.parse(toJson(this.manager.json(this.manager.activate(id(arg!)))));
      case 'POST sessions/deactivate': this.owned(r, id(arg!)); return JSON.parse(toJson(this.manager.json(this.manager.deactivate(id(arg!)))));
      default: throw new QosError('QOS_ERR_NOT_FOUND', `no route ${r.method} ${r.path}`);
    }
  }
}

/** A delay W: "50ms", "0.05" (seconds) or a number of seconds; above 0, at most 60 s. */
function delayOf(v: unknown): number {
  const s = typeof v === 'number' ? v : parseDurationUs(text(v, 'delay'), 's') / 1e6;
  if (!(s > 0 && s <= 60)) throw new QosError('QOS_ERR_USAGE', `delay is above 0 and at most 60 s, not ${JSON.stringify(v)}`);
  return s;
}


