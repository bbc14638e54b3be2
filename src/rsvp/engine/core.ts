/* What the engine's two sides share (engine.ts is the facade, path.ts the path side, resv.ts
 * the reservation side): the state blocks of RFC 2205 section 3 per session — path state
 * (PSB), reservation state (RSB), the merged reservations traffic control holds (TCSB), what
 * goes upstream, blockade state — and the node they live on: options, interfaces, the heap of
 * deadlines, the traffic control queue, and the plumbing both sides send and time through. */

import type { Adspec } from '../adspec.js';
import type { FilterSpec, SenderTemplate } from '../filter-spec.js';
import type { Flowspec } from '../flowspec.js';
import type { Hop } from '../hop.js';
import type { RsvpMessage } from '../message.js';
import type { PolicyData } from '../policy-data.js';
import type { Session } from '../session.js';
import type { StyleName } from '../style.js';
import type { SenderTspec } from '../tspec.js';
import type { Descriptor } from './messages.js';
import { sessionKey } from './state.js';
import { type Deadline, Deadlines } from './timers.js';
import { TrafficQueue } from './traffic.js';
import type { EngineOptions, PolicyIdentity, RsvpEvent, RsvpInterface } from './types.js';

export const DEFAULT_R = 30_000;
export const DEFAULT_K = 3;
/** Blockade state lives Kb refresh periods (RFC 2205 section 3.5 suggests 2). */
export const KB = 2;
/** The pseudo-interface where path state for this host's own address ends, and where its own
 * reservations (reserve()) sit. */
export const LOCAL = '(local)';
export const STYLES = new Set(['FF', 'SE', 'WF']);

export interface Psb {
  key: string;
  template: SenderTemplate;
  tspec: SenderTspec;
  adspec: Adspec | null;
  policies: PolicyData[];
  /** null: this host's own sender */
  phop: Hop | null;
  inIf: string | null;
  /** the interface the data leaves by; LOCAL here at the destination; null: no route */
  outIf: string | null;
  /** the IP TTL Path goes on with */
  ttl: number;
  /** a non-RSVP hop was seen (section 3.8): the ADSPEC's break bit is set going on */
  breakBit: boolean;
  /** what a change is judged by */
  content: string;
  expire: Deadline | null;
  refresh: Deadline | null;
}

export interface Rsb {
  key: string;
  /** null: this host's own request (reserve()) */
  nhop: Hop | null;
  outIf: string;
  style: StyleName;
  flowspec: Flowspec;
  filters: FilterSpec[];
  policies: PolicyData[];
  identity: PolicyIdentity;
  expire: Deadline | null;
}

export interface Installed { ifname: string; style: StyleName; flowspec: Flowspec; filters: FilterSpec[]; gen: number; cause: Rsb | null }

export interface Upstream { phop: Hop; inIf: string; style: StyleName; ds: Descriptor[]; canon: string; refresh: Deadline }

export interface Blockade { qb: Flowspec; expire: Deadline }

export interface Sess {
  key: string;
  session: Session;
  psbs: Map<string, Psb>;
  rsbs: Map<string, Rsb>;
  installed: Map<string, Installed>;
  upstream: Map<string, Upstream>;
  blockades: Map<string, Blockade>;
  /** this receiver's RESV_CONFIRM, until a Resv has carried it */
  confirm: string | null;
}

/** A Resv being processed asked for confirmation: answer it here, or send it on upstream. */
export interface ConfirmAsk { receiver: string; answerHere: boolean }

/** The node's state and plumbing, one per engine. */
export class EngineCore {
  readonly sessions = new Map<string, Sess>();
  readonly deadlines: Deadlines;
  readonly traffic: TrafficQueue;
  readonly byName = new Map<string, RsvpInterface>();
  readonly byLih = new Map<number, RsvpInterface>();
  readonly own = new Set<string>();
  readonly R: number;
  readonly K: number;
  /** path states held, and the bound on them (EngineOptions.maxPaths) */
  paths = 0;
  readonly maxPaths: number;
  pathsRefused = 0;
  readonly random: () => number;
  gen = 0;
  /** sessions by destination and protocol: how many with port 0 and how many with another
   * (RFC 2205 error 7, conflicting destination ports, is one of each) */
  private readonly ports = new Map<string, { zero: number; other: number }>();

  constructor(readonly o: EngineOptions) {
    this.deadlines = new Deadlines(o.clock, o.slackMs ?? 0);
    this.traffic = new TrafficQueue(o.traffic);
    for (const i of o.interfaces) {
      this.byName.set(i.name, i); this.byLih.set(i.lih, i);
      for (const a of i.addresses) this.own.add(a);
    }
    this.R = o.refreshMs ?? DEFAULT_R;
    this.K = o.k ?? DEFAULT_K;
    this.maxPaths = o.maxPaths ?? 100_000;
    this.random = o.random ?? Math.random;
  }

  // ---- plumbing -------------------------------------------------------------------------

  send(msg: RsvpMessage, ifname: string | null, dst: string, src: string, ttl: number, routerAlert: boolean): void {
    msg.sendTtl = ttl;
    this.o.send({ msg, ifname, dst, src, ttl, routerAlert });
  }

  sess(session: Session): Sess {
    const key = sessionKey(session);
    let s = this.sessions.get(key);
    if (!s) {
      s = { key, session, psbs: new Map(), rsbs: new Map(), installed: new Map(), upstream: new Map(), blockades: new Map(), confirm: null };
      this.sessions.set(key, s);
      this.countPorts(session, 1);
    }
    return s;
  }

  /** A session for the same destination and protocol exists with a port 0 where this one has
   * another, or the other way round (RFC 2205 appendix B, error 7). */
  portsConflict(session: Session): boolean {
    const c = this.ports.get(`${session.destination}/${session.protocol}`);
    return !!c && (session.port === 0 ? c.other > 0 : c.zero > 0);
  }

  private countPorts(session: Session, by: 1 | -1): void {
    const k = `${session.destination}/${session.protocol}`;
    const c = this.ports.get(k) ?? { zero: 0, other: 0 };
    if (session.port === 0) c.zero += by; else c.other += by;
    if (c.zero || c.other) this.ports.set(k, c); else this.ports.delete(k);
  }

  gc(s: Sess): void {
    if (s.psbs.size || s.rsbs.size || s.installed.size || s.upstream.size || s.blockades.size || this.sessions.get(s.key) !== s) return;
    this.sessions.delete(s.key);
    this.countPorts(s.session, -1);
  }

  /** L = (K + 0.5) * 1.5 * R of the message's sender (section 3.7). */
  lifetime(refreshMs: number | undefined): number {
    return (this.K + 0.5) * 1.5 * (refreshMs || DEFAULT_R);
  }

  /** A refresh is sent 0.5 R to 1.5 R after the last (section 3.7: against synchronisation). */
  jitter(): number {
    return this.R * (0.5 + this.random());
  }

  /** This node's address on an interface, of the session's family (null: the first interface). */
  addressOn(ifname: string | null, session: Session): string {
    const i = (ifname && this.byName.get(ifname)) || this.o.interfaces[0];
    const v6 = session.destination.includes(':');
    return i?.addresses.find((a) => a.includes(':') === v6) ?? i?.addresses[0] ?? '0.0.0.0';
  }

  hopOn(ifname: string | null, session: Session): Hop | null {
    const i = ifname ? this.byName.get(ifname) : undefined;
    return i ? { kind: 'RSVP_HOP', address: this.addressOn(ifname, session), lih: i.lih } : null;
  }

  emit(e: RsvpEvent): void {
    this.o.onEvent?.(e);
  }
}
