/* The RSVP manager of a host (seed 001's RSVP Manager Module; docs/rsvp.md, "Sessions"): the
 * sessions this host takes part in, as a sender or a receiver, active (refreshing Path or Resv)
 * or inactive (registered, silent: deactivating sends PathTear or ResvTear), and the status
 * notifications of seed 002's FD_QOS (status.ts) for each.
 *
 * A receiver's reservation is given whole ("raw": every FLOWSPEC field), or in seed 001's
 * "support mode" by two numbers: the bandwidth r the flow needs and, for Guaranteed Service,
 * the end-to-end delay W; the rest is loaded from the Path (its SENDER_TSPEC) and R follows
 * from the delay bound with the ADSPEC's Ctot and Dtot (support.ts). With AutoRESV the Resv
 * is sent as Path state arrives and follows it: a new sender, a changed TSpec, a sender gone.
 * The style is the user's, or seed 001's default: WF for one sender, FF for several.
 *
 * Sessions come from the admin API (host.ts), from the policy's `reserve` action for a
 * program's socket (attach.ts), and from the host's AutoRESV option (a Path for a local
 * destination nobody registered for). */

import { QosError } from '../errors.js';
import type { Adspec } from './adspec.js';
import type { RsvpEngine, SenderHandle } from './engine/engine.js';
import type { RsvpEvent } from './engine/types.js';
import { senderKey, sessionKey } from './engine/state.js';
import type { FilterSpec, SenderTemplate } from './filter-spec.js';
import type { Flowspec } from './flowspec.js';
import type { TokenBucket } from './intserv.js';
import type { PolicyData } from './policy-data.js';
import type { Session } from './session.js';
import { codeOfError, errorText, type StatusCode, type StatusEvent, type StatusProgram } from './status.js';
import type { StyleName } from './style.js';
import { float32Up, guaranteedRate } from './support.js';

export interface SenderParams { session: Session; sender: SenderTemplate; tspec: TokenBucket }

export interface ReceiverParams {
  session: Session;
  service: 'CL' | 'GS';
  mode: 'raw' | 'support';
  /** null: WF for one sender, FF for several (seed 001) */
  style: StyleName | null;
  /** the senders it is for; empty: every sender with path state */
  senders: FilterSpec[];
  /** raw: the receiver TSpec; null: loaded from the Path ("Automatic Load from PATH") */
  tspec: TokenBucket | null;
  /** raw Guaranteed: R (null: r) and S */
  R: number | null;
  S: number;
  /** support: the bandwidth r (null: the sender's) and the delay W, seconds (Guaranteed) */
  bandwidth: number | null;
  delayS: number | null;
  /** send Resv as Path state arrives and follow it (a raw reservation with its TSpec given is
   * sent at once, and the engine holds it until path state comes) */
  autoResv: boolean;
  confirm: boolean;
}

export type Origin = 'admin' | 'policy' | 'auto';

export interface Managed {
  id: number;
  uid: number;
  role: 'sender' | 'receiver';
  origin: Origin;
  active: boolean;
  policy: PolicyData;
  program: StatusProgram | null;
  sender?: SenderParams;
  receiver?: ReceiverParams;
  /** the mark this session's flow takes once admitted (a policy `reserve` with a dscp) */
  dscp: number | null;
  /** a TCP sender's measured round trip and the window W_R = 2 RTT r its receiver should
   * advertise to pace it at r (seed 001), when known */
  tcp?: { rttS: number; window: number } | null;
  /** when it was opened, ms since the epoch */
  opened: number;
}

interface State {
  m: Managed;
  shandle: SenderHandle | null;
  rhandle: { close(): void } | null;
  /** the Resv asked now: its style and descriptors as text (a change re-reserves) */
  asked: string | null;
  askedStyle: StyleName | null;
  /** receiver: the path state heard for its session, by sender */
  paths: Map<string, { sender: SenderTemplate; tspec: TokenBucket; adspec: Adspec | null }>;
  /** sender: the FLOWSPEC of the last Resv reported (FD_QOS: once, and again on a change) */
  lastResv: string | null;
  /** where the session's reservation is installed on this host: traffic control's flow */
  installed: { flow: number; key: string } | null;
  /** the last notification */
  last: { code: StatusCode; reason: string; at: string } | null;
}

export interface ManagerOptions {
  engine: () => RsvpEngine;
  notify: (e: Omit<StatusEvent, 'seq' | 'at'>, m: Managed | null) => void;
  /** AutoRESV for Paths nobody registered for: the service and, for Guaranteed, the delay W (s) */
  autoResv?: { service: 'CL' | 'GS'; delayS: number | null } | null;
  /** the policy data of a session AutoRESV makes */
  hostPolicy: () => PolicyData;
  /** the ADSPEC a sender's Path starts with, toward a destination (none: Path without one) */
  adspecFor?: (destination: string) => Adspec;
}

/** Sessions AutoRESV makes at most (each answers a Path anyone on the link may send). */
export const MAX_AUTO = 1024;

/** A token bucket as the wire carries it: r, b and p 32-bit floats (RFC 2210), rounded up so a
 * flow is never declared smaller than it is; m and M whole bytes. */
const bucketOf = (t: TokenBucket): TokenBucket => ({ r: float32Up(t.r), b: float32Up(t.b), p: Number.isFinite(t.p) ? float32Up(t.p) : t.p, m: Math.ceil(t.m), M: Math.ceil(t.M) });

export class RsvpManager {
  private readonly states = new Map<number, State>();
  private nextId = 1;

  constructor(private readonly o: ManagerOptions) {}

  get size(): number { return this.states.size; }

  all(): Managed[] { return [...this.states.values()].map((s) => s.m); }

  get(id: number): Managed | undefined { return this.states.get(id)?.m; }

  /** Registers a session; active: starts signalling at once. */
  open(m: Omit<Managed, 'id' | 'active' | 'opened'>, active: boolean): Managed {
    const full: Managed = { ...m, ...(m.sender ? { sender: { ...m.sender, tspec: bucketOf(m.sender.tspec) } } : {}), id: this.nextId++, active: false, opened: Date.now() };
    const st: State = { m: full, shandle: null, rhandle: null, asked: null, askedStyle: null, paths: new Map(), lastResv: null, installed: null, last: null };
    this.states.set(full.id, st);
    // what path state this host already holds for a receiver's session
    if (full.role === 'receiver') for (const p of this.o.engine().pathsOf(full.receiver!.session)) st.paths.set(senderKey(p.sender), { ...p, tspec: bucketOf(p.tspec) });
    if (active) this.activate(full.id);
    return full;
  }

  activate(id: number): Managed {
    const st = this.state(id);
    if (st.m.active) return st.m;
    st.m.active = true;
    if (st.m.role === 'sender') {
      const s = st.m.sender!;
      const adspec = this.o.adspecFor?.(s.session.destination);
      st.shandle = this.o.engine().sender({ session: s.session, sender: s.sender, tspec: { kind: 'SENDER_TSPEC', ...s.tspec }, policyData: st.m.policy, ...(adspec ? { adspec } : {}) });
    } else this.reserve(st);
    return st.m;
  }

  /** Stops signalling (PathTear or ResvTear); the session stays registered. */
  deactivate(id: number): Managed {
    const st = this.state(id);
    if (!st.m.active) return st.m;
    st.m.active = false;
    st.shandle?.close(); st.shandle = null;
    st.rhandle?.close(); st.rhandle = null;
    st.asked = null; st.askedStyle = null;
    return st.m;
  }

  close(id: number): void {
    if (!this.states.has(id)) return;
    this.deactivate(id);
    this.states.delete(id);
  }

  closeAll(): void {
    for (const id of [...this.states.keys()]) this.close(id);
  }

  /** A sender's new TSpec (seed 001: re-advertised at once in a Path). */
  updateTspec(id: number, tspec: TokenBucket): void {
    const st = this.state(id);
    st.m.sender!.tspec = bucketOf(tspec);
    st.shandle?.update({ kind: 'SENDER_TSPEC', ...st.m.sender!.tspec });
  }

  /** What this host's traffic control holds for a session's reservation (host.ts's installer):
   * the senders it covers are marked from now on. */
  setInstalled(session: Session, style: StyleName, filters: FilterSpec[], installed: { flow: number; key: string }): void {
    for (const st of this.senders(session)) if (covers(style, filters, st.m.sender!.sender)) st.installed = installed;
  }

  /** Forgets what traffic control held under a key. */
  clearInstalled(key: string): void {
    for (const st of this.states.values()) if (st.installed?.key === key) st.installed = null;
  }

  /** The conforming mark a reservation's flow takes: that of a policy session it covers, if it gives one. */
  markFor(session: Session, style: StyleName, filters: FilterSpec[]): number | null {
    for (const st of this.senders(session)) if (st.m.dscp !== null && covers(style, filters, st.m.sender!.sender)) return st.m.dscp;
    return null;
  }

  /** A reservation this host refused on its own link (admission) or could not install. */
  localRefusal(session: Session, code: StatusCode, reason: string): void {
    const mine = this.senders(session);
    if (!mine.length) this.emit(null, code, session, null, null, reason);
    for (const st of mine) this.emit(st, code, session, st.m.sender!.sender, null, reason);
  }

  /** One of the engine's events, as notifications for the sessions it concerns. */
  onEngine(e: RsvpEvent): void {
    switch (e.kind) {
      case 'path': {
        const mine = this.receivers(e.session);
        let made: State | null = null;
        if (!mine.length && this.o.autoResv && this.autoCount() >= MAX_AUTO) {
          // anyone on the link may send Paths: AutoRESV answers at most MAX_AUTO sessions
          this.emit(null, 'GENERIC_ERROR', e.session, e.sender, null, `AutoRESV holds ${MAX_AUTO} sessions already: this Path is not answered`);
        } else if (!mine.length && this.o.autoResv) {
          const a = this.o.autoResv;
          mine.push(this.states.get(this.open({
            uid: 0, role: 'receiver', origin: 'auto', policy: this.o.hostPolicy(), program: null, dscp: null,
            receiver: { session: e.session, service: a.service, mode: 'support', style: null, senders: [], tspec: null, R: null, S: 0, bandwidth: null, delayS: a.delayS, autoResv: true, confirm: false },
          }, true).id)!);
          made = mine[0]!;
        }
        const reason = `Path from ${e.sender.source}:${e.sender.port}: ${rateText(e.tspec.r)} bucket ${Math.round(e.tspec.b)} B`;
        if (!mine.length) { this.emit(null, 'SENDERS', e.session, e.sender, null, reason); return; }
        for (const st of mine) {
          const k = senderKey(e.sender);
          const before = st.paths.get(k);
          st.paths.set(k, { sender: e.sender, tspec: bucketOf(e.tspec), adspec: e.adspec });
          if (st === made || !before || JSON.stringify(before.tspec) !== JSON.stringify(bucketOf(e.tspec))) this.emit(st, 'SENDERS', e.session, e.sender, null, reason);
          if (st.m.active) this.reserve(st);
        }
        return;
      }
      case 'path-gone': {
        const mine = this.receivers(e.session);
        const reason = `path state of ${e.sender.source}:${e.sender.port} ${e.why === 'tear' ? 'torn down' : 'timed out'}`;
        if (!mine.length) { this.emit(null, 'NO_SENDERS', e.session, e.sender, null, reason); return; }
        for (const st of mine) {
          st.paths.delete(senderKey(e.sender));
          this.emit(st, 'NO_SENDERS', e.session, e.sender, null, reason);
          if (st.m.origin === 'auto' && !st.paths.size) { this.close(st.m.id); continue; }
          if (st.m.active) this.reserve(st);
        }
        return;
      }
      case 'resv': {
        const text = JSON.stringify([e.style, e.flowspec]);
        const mine = this.senders(e.session).filter((st) => covers(e.style, e.filters, st.m.sender!.sender));
        const reason = `Resv ${e.style} ${flowspecText(e.flowspec)}`;
        if (!mine.length) { this.emit(null, 'RECEIVERS', e.session, null, null, reason); return; }
        for (const st of mine) {
          if (st.lastResv === text) continue;
          st.lastResv = text;
          this.emit(st, 'RECEIVERS', e.session, st.m.sender!.sender, null, reason);
        }
        return;
      }
      case 'resv-gone': {
        const mine = this.senders(e.session);
        const reason = `reservation ${e.why === 'tear' ? 'torn down' : 'timed out'}`;
        if (!mine.length) { this.emit(null, 'NO_RECEIVERS', e.session, null, null, reason); return; }
        for (const st of mine) { st.lastResv = null; this.emit(st, 'NO_RECEIVERS', e.session, st.m.sender!.sender, null, reason); }
        return;
      }
      case 'resv-error':
      case 'path-error': {
        const mine = e.kind === 'resv-error' ? this.receivers(e.session) : this.senders(e.session);
        const error = { code: e.code, value: e.value, node: e.node };
        const reason = `${e.kind === 'resv-error' ? 'ResvErr' : 'PathErr'}: ${errorText(error)}`;
        if (!mine.length) { this.emit(null, codeOfError(e.code), e.session, null, error, reason); return; }
        for (const st of mine) this.emit(st, codeOfError(e.code), e.session, st.m.sender?.sender ?? null, error, reason);
        return;
      }
      case 'confirm': {
        const mine = this.receivers(e.session);
        const reason = `ResvConf: the reservation is in place up to a merge point or the sender (confirmation to ${e.receiver})`;
        if (!mine.length) { this.emit(null, 'REQUEST_CONFIRMED', e.session, null, null, reason); return; }
        for (const st of mine) this.emit(st, 'REQUEST_CONFIRMED', e.session, null, null, reason);
      }
    }
  }

  /** A session's record for `qos rsvp sessions`. */
  json(m: Managed): Record<string, unknown> {
    const st = this.states.get(m.id);
    const { policy: _policy, ...rest } = m;
    return {
      ...rest,
      kind: m.role === 'sender' ? 'sender' : 'reservation',
      session: m.sender?.session ?? m.receiver?.session,
      ...(st ? {
        signalling: m.role === 'sender' ? st.shandle !== null : st.rhandle !== null,
        reserved: m.role === 'sender' ? st.lastResv !== null : undefined,
        paths: m.role === 'receiver' ? [...st.paths.values()].map((p) => ({ sender: p.sender, tspec: p.tspec })) : undefined,
        asked: st.asked === null ? null : JSON.parse(st.asked) as unknown,
        marked: st.installed, last: st.last,
      } : {}),
    };
  }

  // ---- internals ----------------------------------------------------------------------

  private state(id: number): State {
    const st = this.states.get(id);
    if (!st) throw new QosError('QOS_ERR_NOT_FOUND', `no RSVP session ${id}`);
    return st;
  }

  private autoCount(): number {
    let n = 0;
    for (const st of this.states.values()) if (st.m.origin === 'auto') n++;
    return n;
  }

  private emit(st: State | null, code: StatusCode, session: Session, sender: SenderTemplate | FilterSpec | null, error: StatusEvent['error'], reason: string): void {
    const m = st?.m ?? null;
    if (st) st.last = { code, reason, at: new Date().toISOString() };
    this.o.notify({ code, id: m?.id ?? null, role: m?.role ?? null, session, sender, program: m?.program ?? null, error, reason }, m);
  }

  private receivers(session: Session): State[] {
    const k = sessionKey(session);
    return [...this.states.values()].filter((st) => st.m.role === 'receiver' && sessionKey(st.m.receiver!.session) === k);
  }

  private senders(session: Session): State[] {
    const k = sessionKey(session);
    return [...this.states.values()].filter((st) => st.m.role === 'sender' && sessionKey(st.m.sender!.session) === k);
  }


  /** Sends (or changes, or withdraws) a receiver's Resv after what it knows changed. */
  private reserve(st: State): void {
    const want = this.descriptors(st);
    const text = want && JSON.stringify(want);
    if (text === st.asked) return;
    const engine = this.o.engine();
    const old = st.rhandle;
    // a change of style: the old one goes first (two styles on one session conflict)
    if (old && want?.style !== st.askedStyle) { old.close(); st.rhandle = null; }
    st.rhandle = want ? engine.reserve({ session: st.m.receiver!.session, style: want.style, descriptors: want.descriptors, confirm: st.m.receiver!.confirm, policyData: st.m.policy }) : null;
    // the same style: the new one replaces the old's state blocks, then the old lets go of the rest
    if (old && st.rhandle !== null && want?.style === st.askedStyle) old.close();
    else if (old && !want) old.close();
    st.asked = text;
    st.askedStyle = want?.style ?? null;
  }

  /** The Resv a receiver session asks now, or null (it waits for path state). */
  private descriptors(st: State): { style: StyleName; descriptors: { flowspec: Flowspec; filters: FilterSpec[] }[] } | null {
    const r = st.m.receiver!;
    const wanted = (t: SenderTemplate) => !r.senders.length || r.senders.some((f) => f.source === t.source && (f.port === 0 || f.port === t.port));
    const paths = [...st.paths.values()].filter((p) => wanted(p.sender));
    // a raw reservation given whole goes at once (the engine holds it for the path state)
    if (!r.autoResv && r.tspec && r.mode === 'raw') {
      const style = r.style ?? (r.senders.length > 1 ? 'FF' : 'WF');
      const flowspec = this.flowspecOf(r, r.tspec, null);
      return { style, descriptors: style === 'FF' ? r.senders.map((f) => ({ flowspec, filters: [f] })) : [{ flowspec, filters: style === 'SE' ? r.senders : [] }] };
    }
    if (!paths.length) return null;
    const style = r.style ?? (paths.length > 1 ? 'FF' : 'WF');
    const filter = (t: SenderTemplate): FilterSpec => ({ kind: 'FILTER_SPEC', source: t.source, port: t.port });
    if (style === 'FF') return { style, descriptors: paths.map((p) => ({ flowspec: this.flowspecOf(r, r.tspec ?? p.tspec, p.adspec), filters: [filter(p.sender)] })) };
    // shared: the least upper bound of the senders' TSpecs (RFC 2210: each field's largest, m's smallest)
    const lub = paths.map((p) => p.tspec).reduce((a, b) => ({ r: Math.max(a.r, b.r), b: Math.max(a.b, b.b), p: Math.max(a.p, b.p), m: Math.min(a.m, b.m), M: Math.max(a.M, b.M) }));
    const adspec = paths.find((p) => p.adspec?.gs?.terms)?.adspec ?? null;
    return { style, descriptors: [{ flowspec: this.flowspecOf(r, r.tspec ?? lub, adspec), filters: style === 'SE' ? paths.map((p) => filter(p.sender)) : [] }] };
  }

  private flowspecOf(r: ReceiverParams, sent: TokenBucket, adspec: Adspec | null): Flowspec {
    const tspec = bucketOf({ ...sent, ...(r.mode === 'support' && r.bandwidth !== null ? { r: r.bandwidth } : {}) });
    if (tspec.p < tspec.r) tspec.p = tspec.r;
    if (r.service === 'CL') return { kind: 'FLOWSPEC', service: 'CL', tspec };
    let R = r.R ?? tspec.r;
    if (r.mode === 'support' && r.delayS !== null) {
      const terms = adspec?.gs?.terms ?? null;
      R = guaranteedRate({ r: tspec.r, b: tspec.b, p: tspec.p, M: tspec.M, W: r.delayS, ctot: terms?.ctot ?? 0, dtot: terms?.dtot ?? 0 });
    }
    return { kind: 'FLOWSPEC', service: 'GS', tspec, R: Math.max(R, tspec.r), S: r.S };
  }
}

/** Whether a reservation of this style and filters covers a sender (WF: every sender). */
function covers(style: StyleName, filters: FilterSpec[], s: SenderTemplate): boolean {
  return style === 'WF' || !filters.length || filters.some((f) => f.source === s.source && (f.port === 0 || f.port === s.port));
}

function rateText(bytesPerS: number): string {
  const bits = bytesPerS * 8;
  return bits >= 1e6 ? `${(bits / 1e6).toFixed(2)} Mbit/s` : `${(bits / 1e3).toFixed(1)} kbit/s`;
}

function flowspecText(f: Flowspec): string {
  return f.service === 'CL' ? `Controlled Load ${rateText(f.tspec.r)}` : `Guaranteed R ${rateText(f.R)} (r ${rateText(f.tspec.r)})`;
}
