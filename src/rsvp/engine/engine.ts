/* The RSVP soft-state engine (RFC 2205 section 3 and its "Message Processing Rules"): path
 * state per (session, sender), reservation state per (session, next hop, interface, filter or
 * style), the merged reservation traffic control holds per (session, interface), blockade
 * state (section 3.5), refresh and time-out on one heap of deadlines, teardown, errors and
 * confirmation. Pure: messages come in by receive() and go out by the Send it is given; the
 * clock, routes, traffic control and admission are injected (types.ts).
 *
 * A host's own senders and receivers are state blocks like any other: sender() makes a local
 * path state block (no previous hop, never timing out), reserve() local reservation state
 * blocks (no next hop, on the LOCAL pseudo-interface where path state for this host ends). So
 * the upstream merge that sends a router's Resv also sends a receiver's, and a Resv reaching
 * the sender host meets path state with no previous hop: the end of the way for confirmation. */

import type { Adspec } from '../adspec.js';
import { ERROR_CODES, ERROR_IN_PLACE, type ErrorSpec } from '../error-spec.js';
import type { FilterSpec, SenderTemplate } from '../filter-spec.js';
import type { Flowspec } from '../flowspec.js';
import type { Hop } from '../hop.js';
import type { RsvpMessage } from '../message.js';
import type { PolicyData } from '../policy-data.js';
import type { Session } from '../session.js';
import type { StyleName } from '../style.js';
import type { SenderTspec } from '../tspec.js';
import { type Descriptor, pathErrMsg, pathMsg, pathTearMsg, pick, type Picked, resvConfMsg, resvErrMsg, resvMsg, resvTearMsg } from './messages.js';
import { blockades, identityOf, mergeReservations, mergeUpstream, reservationKey, sameFilters, sameFlowspec, senderKey, sessionKey, sortFilters } from './state.js';
import { Deadline, Deadlines } from './timers.js';
import { TrafficQueue } from './traffic.js';
import type { EngineCounts, EngineOptions, Inbound, PolicyIdentity, RsvpEvent, RsvpInterface } from './types.js';

const DEFAULT_R = 30_000;
const DEFAULT_K = 3;
/** Blockade state lives Kb refresh periods (RFC 2205 section 3.5 suggests 2). */
const KB = 2;
/** The pseudo-interface where path state for this host's own address ends, and where its own
 * reservations (reserve()) sit. */
export const LOCAL = '(local)';
const STYLES = new Set(['FF', 'SE', 'WF']);

interface Psb {
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

interface Rsb {
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

interface Installed { ifname: string; style: StyleName; flowspec: Flowspec; filters: FilterSpec[]; gen: number; cause: Rsb | null }

interface Upstream { phop: Hop; inIf: string; style: StyleName; ds: Descriptor[]; canon: string; refresh: Deadline }

interface Blockade { qb: Flowspec; expire: Deadline }

interface Sess {
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
interface ConfirmAsk { receiver: string; answerHere: boolean }

export class RsvpEngine {
  private readonly sessions = new Map<string, Sess>();
  private readonly deadlines: Deadlines;
  private readonly traffic: TrafficQueue;
  private readonly byName = new Map<string, RsvpInterface>();
  private readonly byLih = new Map<number, RsvpInterface>();
  private readonly own = new Set<string>();
  private readonly R: number;
  private readonly K: number;
  private readonly random: () => number;
  private gen = 0;

  constructor(private readonly o: EngineOptions) {
    this.deadlines = new Deadlines(o.clock, o.slackMs ?? 0);
    this.traffic = new TrafficQueue(o.traffic);
    for (const i of o.interfaces) {
      this.byName.set(i.name, i); this.byLih.set(i.lih, i);
      for (const a of i.addresses) this.own.add(a);
    }
    this.R = o.refreshMs ?? DEFAULT_R;
    this.K = o.k ?? DEFAULT_K;
    this.random = o.random ?? Math.random;
  }

  // ---- the API --------------------------------------------------------------------------

  /** One received message (already decoded). */
  receive(i: Inbound): void {
    const p = pick(i.msg);
    if (!p.session) return; // nothing to file it under
    switch (i.msg.type) {
      case 'Path': return this.onPath(i, p, p.session);
      case 'PathTear': return this.onPathTear(p, p.session);
      case 'Resv': return this.onResv(i, p, p.session);
      case 'ResvTear': return this.onResvTear(i, p, p.session);
      case 'PathErr': return this.onPathErr(i, p, p.session);
      case 'ResvErr': return this.onResvErr(i, p, p.session);
      case 'ResvConf': return this.onResvConf(i, p, p.session);
    }
  }

  /** Host, sender side: Path toward the destination now and every R (jittered); close() sends PathTear. */
  sender(a: { session: Session; sender: SenderTemplate; tspec: SenderTspec; adspec?: Adspec; policyData?: PolicyData; ttl?: number }): { close(): void } {
    const s = this.sess(a.session);
    const key = senderKey(a.sender);
    const old = s.psbs.get(key);
    if (old) this.dropPsb(s, old, 'tear', true);
    const policy = a.policyData ?? this.o.policyData;
    const psb: Psb = {
      key, template: a.sender, tspec: a.tspec, adspec: a.adspec ?? null, policies: policy ? [policy] : [],
      phop: null, inIf: null, outIf: this.o.routes.lookup(a.session.destination)?.ifname ?? null,
      ttl: a.ttl ?? 64, breakBit: false, content: '', expire: null, refresh: null,
    };
    s.psbs.set(key, psb);
    this.startPathRefresh(s, psb);
    return { close: () => { if (s.psbs.get(key) === psb) { this.dropPsb(s, psb, 'tear', true); this.reconcile(s); } } };
  }

  /** Host, receiver side: Resv to the previous hop of each matching path state, now, when path
   * state arrives and every R; close() sends ResvTear. */
  reserve(a: { session: Session; style: StyleName; descriptors: { flowspec: Flowspec; filters: FilterSpec[] }[]; confirm?: boolean; policyData?: PolicyData }): { close(): void } {
    const s = this.sess(a.session);
    const policy = a.policyData ?? this.o.policyData;
    const policies = policy ? [policy] : [];
    const mine: Rsb[] = [];
    const add = (flowspec: Flowspec, filters: FilterSpec[], tail: string) => {
      const r: Rsb = { key: `${LOCAL}|${tail}`, nhop: null, outIf: LOCAL, style: a.style, flowspec, filters: sortFilters(filters), policies, identity: identityOf(policies), expire: null };
      s.rsbs.set(r.key, r); mine.push(r);
    };
    for (const d of a.descriptors) {
      if (a.style === 'FF') for (const f of d.filters) add(d.flowspec, [f], senderKey(f));
      else add(d.flowspec, a.style === 'SE' ? d.filters : [], '*');
    }
    if (a.confirm) s.confirm = this.addressOn(null, a.session); // this host's own address: a multicast destination is not one
    this.reconcileUpstream(s);
    return {
      close: () => {
        for (const r of mine) if (s.rsbs.get(r.key) === r) s.rsbs.delete(r.key);
        this.reconcileUpstream(s);
        this.gc(s);
      },
    };
  }

  counts(): EngineCounts {
    const c: EngineCounts = { sessions: this.sessions.size, psb: 0, rsb: 0, tcsb: 0, blockades: 0 };
    for (const s of this.sessions.values()) {
      c.psb += s.psbs.size; c.rsb += s.rsbs.size; c.tcsb += s.installed.size; c.blockades += s.blockades.size;
    }
    return c;
  }

  /** A JSON-able dump of the state blocks, for `qos rsvp status --json`. */
  state(): unknown {
    const now = this.o.clock.now();
    const left = (d: Deadline | null) => (d?.pending ? Math.round(d.at - now) : null);
    return {
      role: this.o.role, refreshMs: this.R, counts: this.counts(), trafficPending: this.traffic.pending,
      sessions: [...this.sessions.values()].map((s) => ({
        session: s.session,
        psb: [...s.psbs.values()].map((p) => ({ sender: p.template, tspec: p.tspec, adspec: p.adspec, phop: p.phop, inIf: p.inIf, outIf: p.outIf, expiresInMs: left(p.expire) })),
        rsb: [...s.rsbs.values()].map((r) => ({ nhop: r.nhop, outIf: r.outIf, style: r.style, flowspec: r.flowspec, filters: r.filters, identity: r.identity, expiresInMs: left(r.expire) })),
        tcsb: [...s.installed].map(([key, t]) => ({ key, ifname: t.ifname, style: t.style, flowspec: t.flowspec, filters: t.filters })),
        upstream: [...s.upstream.values()].map((u) => ({ phop: u.phop, style: u.style, descriptors: u.ds })),
        blockades: [...s.blockades].map(([key, b]) => ({ key, qb: b.qb, expiresInMs: left(b.expire) })),
      })),
    };
  }

  /** Cancels every timer; sends nothing (a crash, as the neighbours see it). */
  stop(): void {
    this.deadlines.stop();
  }

  // ---- path state -----------------------------------------------------------------------

  private onPath(i: Inbound, p: Picked, session: Session): void {
    if (!p.hop || !p.template || !p.tspec) return; // a Path with no sender descriptor sets up nothing
    const local = this.own.has(session.destination);
    if (!local && this.o.role === 'host') return; // hosts do not forward
    const s = this.sess(session);
    const key = senderKey(p.template);
    let psb = s.psbs.get(key);
    if (psb && !psb.phop) return; // our own Path come back: ours stays
    const outIf = local ? LOCAL : this.o.routes.lookup(session.destination)?.ifname ?? null;
    const content = JSON.stringify([p.hop, i.ifname, outIf, p.tspec, p.adspec ?? null, p.policies]);
    const fresh = !psb;
    if (!psb) {
      psb = { key, template: p.template, tspec: p.tspec, adspec: null, policies: [], phop: null, inIf: null, outIf: null, ttl: 0, breakBit: false, content: '', expire: null, refresh: null };
      const made = psb;
      psb.expire = new Deadline(() => { this.dropPsb(s, made, 'timeout', true); this.reconcile(s); });
      s.psbs.set(key, psb);
    }
    Object.assign(psb, { tspec: p.tspec, adspec: p.adspec ?? null, policies: p.policies, phop: p.hop, inIf: i.ifname, outIf, ttl: i.ttl - 1, breakBit: i.ttl !== i.msg.sendTtl });
    this.deadlines.after(psb.expire!, this.lifetime(p.refreshMs));
    if (!fresh && psb.content === content) return; // a refresh: nothing to pass on (routers refresh downstream by themselves, section 3.7)
    psb.content = content;
    if (local) this.emit({ kind: 'path', session, sender: psb.template, tspec: psb.tspec, adspec: psb.adspec, phop: p.hop.address });
    else this.startPathRefresh(s, psb); // a trigger: forward now
    this.reconcile(s);
  }

  /** Sends Path downstream now and then every R, jittered. */
  private startPathRefresh(s: Sess, psb: Psb): void {
    if (psb.outIf === LOCAL) return;
    psb.refresh ??= new Deadline(() => { this.sendPath(s, psb); this.deadlines.after(psb.refresh!, this.jitter()); });
    this.sendPath(s, psb);
    this.deadlines.after(psb.refresh, this.jitter());
  }

  private sendPath(s: Sess, psb: Psb): void {
    if (!psb.phop && !psb.outIf) psb.outIf = this.o.routes.lookup(s.session.destination)?.ifname ?? null; // a local sender waits for a route
    const hop = this.hopOn(psb.outIf, s.session);
    if (!hop || psb.ttl < 1) return; // no route, or the TTL is spent
    this.send(pathMsg({ ...psb, session: s.session, adspec: this.composeAdspec(psb) }, hop, this.R, psb.ttl), psb.outIf, s.session.destination, psb.template.source, psb.ttl, true);
  }

  /** The ADSPEC going on (RFC 2210 section 3.3): a router is one more IS hop; a non-RSVP hop
   * before it breaks the composition (section 3.8 of RFC 2205). */
  private composeAdspec(psb: Psb): Adspec | null {
    const a = psb.adspec;
    if (!a || !psb.phop) return a;
    return { ...a, general: { ...a.general, hopCount: a.general.hopCount + 1, breakBit: a.general.breakBit || psb.breakBit } };
  }

  private onPathTear(p: Picked, session: Session): void {
    const s = this.sessions.get(sessionKey(session));
    const psb = s && p.template ? s.psbs.get(senderKey(p.template)) : undefined;
    if (!s || !psb || !psb.phop || psb.phop.address !== p.hop?.address) return; // only the previous hop tears its path
    this.dropPsb(s, psb, 'tear', true);
    this.reconcile(s);
  }

  /** Deletes path state and the reservations that depended on it alone (section 3.1.5), and
   * sends PathTear on downstream. The caller reconciles. */
  private dropPsb(s: Sess, psb: Psb, why: 'tear' | 'timeout', tear: boolean): void {
    if (psb.expire) this.deadlines.cancel(psb.expire);
    if (psb.refresh) this.deadlines.cancel(psb.refresh);
    s.psbs.delete(psb.key);
    if (tear && psb.outIf !== LOCAL) {
      const hop = this.hopOn(psb.outIf, s.session);
      if (hop && psb.ttl >= 1) this.send(pathTearMsg(s.session, hop, psb.template, psb.ttl), psb.outIf, s.session.destination, psb.template.source, psb.ttl, true);
    }
    this.emit({ kind: 'path-gone', session: s.session, sender: psb.template, why });
    for (const r of [...s.rsbs.values()]) {
      if (!r.nhop || r.outIf !== psb.outIf) continue; // our own requests wait for path state to come back
      const left = r.filters.filter((f) => s.psbs.get(senderKey(f))?.outIf === r.outIf);
      if (r.style === 'WF' ? ![...s.psbs.values()].some((q) => q.outIf === r.outIf) : !left.length) this.dropRsb(s, r, why);
      else if (r.style === 'SE') r.filters = left;
    }
  }

  private onPathErr(i: Inbound, p: Picked, session: Session): void {
    const s = this.sessions.get(sessionKey(session));
    const psb = s && p.template ? s.psbs.get(senderKey(p.template)) : undefined;
    if (psb?.phop) { // hop by hop toward the sender (section 3.1.6)
      this.send(i.msg, psb.inIf, psb.phop.address, this.addressOn(psb.inIf, session), 64, false);
      return;
    }
    if (p.error && (psb || this.o.role === 'host')) this.emit({ kind: 'path-error', session, code: p.error.code, value: p.error.value, node: p.error.node });
  }

  // ---- reservation state ----------------------------------------------------------------

  private onResv(i: Inbound, p: Picked, session: Session): void {
    const nhop = p.hop;
    if (!nhop) return;
    const outIf = this.byLih.get(nhop.lih)?.name ?? i.ifname; // the LIH we put in Path comes back (section 3.1.3)
    const refuse = (code: number, value: number, style: StyleName, d: Descriptor | null) =>
      this.sendResvErr(session, nhop.address, outIf, { code, value, flags: 0 }, style, d);
    if (!p.style || !STYLES.has(p.style)) return refuse(ERROR_CODES.UNKNOWN_STYLE, 0, 'WF', null);
    const style = p.style as StyleName;
    const s = this.sessions.get(sessionKey(session));
    const routed = s ? [...s.psbs.values()].filter((q) => q.outIf === outIf) : [];
    if (!s || !routed.length) return refuse(ERROR_CODES.NO_PATH, 0, style, p.descriptors[0] ?? null);
    if ([...s.rsbs.values()].some((r) => r.style !== style)) return refuse(ERROR_CODES.CONFLICTING_STYLE, 0, style, p.descriptors[0] ?? null);
    const policies = p.policies;
    const identity = identityOf(policies);
    const changed: Rsb[] = [];
    for (const d of p.descriptors) {
      if (!d.flowspec) continue;
      const filters = style === 'WF' ? [] : d.filters.filter((f) => s.psbs.get(senderKey(f))?.outIf === outIf);
      if (style !== 'WF' && !filters.length) { refuse(ERROR_CODES.NO_SENDER, 0, style, d); continue; }
      const key = `${nhop.address}|${outIf}|${style === 'FF' ? senderKey(filters[0]!) : '*'}`;
      const r = this.applyRsb(s, { key, nhop, outIf, style, flowspec: d.flowspec, filters: sortFilters(filters), policies, identity, expire: null }, p.refreshMs);
      if (r === 'changed') changed.push(s.rsbs.get(key)!);
      if (r === 'refused') p.confirm = undefined; // nothing to confirm
    }
    this.reconcileUpstream(s, p.confirm ? { receiver: p.confirm, answerHere: true } : undefined);
    if (this.o.role === 'host') for (const r of changed) this.emit({ kind: 'resv', session, style: r.style, flowspec: r.flowspec, filters: r.filters });
  }

  /** Files one reservation request and makes traffic control follow; a refusal puts back what
   * was there before (the first killer-reservation rule, section 2.5) and answers ResvErr. */
  private applyRsb(s: Sess, want: Rsb, refreshMs: number | undefined): 'refresh' | 'changed' | 'refused' {
    const old = s.rsbs.get(want.key);
    if (old) this.deadlines.after(old.expire!, this.lifetime(refreshMs));
    if (old && sameFlowspec(old.flowspec, want.flowspec) && sameFilters(old.filters, want.filters) && JSON.stringify(old.identity) === JSON.stringify(want.identity)) return 'refresh';
    const before = old && { flowspec: old.flowspec, filters: old.filters, policies: old.policies, identity: old.identity };
    const rsb = old ?? want;
    Object.assign(rsb, { flowspec: want.flowspec, filters: want.filters, policies: want.policies, identity: want.identity });
    if (!old) {
      rsb.expire = new Deadline(() => { this.dropRsb(s, rsb, 'timeout'); this.reconcile(s); });
      this.deadlines.after(rsb.expire, this.lifetime(refreshMs));
      s.rsbs.set(rsb.key, rsb);
    }
    const refused = this.reconcileTc(s, rsb.outIf, rsb);
    if (!refused) return 'changed';
    if (before) Object.assign(rsb, before);
    else { this.deadlines.cancel(rsb.expire!); s.rsbs.delete(rsb.key); }
    this.reconcileTc(s, rsb.outIf, null);
    this.sendResvErr(s.session, rsb.nhop!.address, rsb.outIf, { ...refused, flags: before ? ERROR_IN_PLACE : 0 }, rsb.style, want);
    return 'refused';
  }

  private onResvTear(i: Inbound, p: Picked, session: Session): void {
    const s = this.sessions.get(sessionKey(session));
    if (!s || !p.hop || !p.style || !STYLES.has(p.style)) return;
    const outIf = this.byLih.get(p.hop.lih)?.name ?? i.ifname;
    const base = `${p.hop.address}|${outIf}|`;
    if (p.style === 'FF') {
      for (const f of p.descriptors.flatMap((d) => d.filters)) {
        const r = s.rsbs.get(base + senderKey(f));
        if (r) this.dropRsb(s, r, 'tear');
      }
    } else {
      const r = s.rsbs.get(base + '*');
      const gone = new Set(p.descriptors.flatMap((d) => d.filters).map(senderKey));
      const left = r ? r.filters.filter((f) => !gone.has(senderKey(f))) : [];
      if (r && (p.style === 'WF' || !gone.size || !left.length)) this.dropRsb(s, r, 'tear');
      else if (r) r.filters = left;
    }
    this.reconcile(s);
  }

  /** Deletes reservation state; the caller reconciles. */
  private dropRsb(s: Sess, r: Rsb, why: 'tear' | 'timeout'): void {
    if (r.expire) this.deadlines.cancel(r.expire);
    if (s.rsbs.get(r.key) === r) s.rsbs.delete(r.key);
    this.emit({ kind: 'resv-gone', session: s.session, why });
  }

  // ---- merging: traffic control and upstream ----------------------------------------------

  /** After any change of a session's state: traffic control on every interface, the Resv
   * upstream, and the session dropped when nothing is left. */
  private reconcile(s: Sess): void {
    const ifs = new Set<string>();
    for (const r of s.rsbs.values()) ifs.add(r.outIf);
    for (const t of s.installed.values()) ifs.add(t.ifname);
    for (const f of ifs) this.reconcileTc(s, f, null);
    this.reconcileUpstream(s);
    this.gc(s);
  }

  /** Makes traffic control on one interface hold the merge of the session's reservations there.
   * With `cause`, the change it makes is judged first and a refusal stops there (returned). */
  private reconcileTc(s: Sess, ifname: string, cause: Rsb | null): { code: number; value: number } | null {
    if (ifname === LOCAL || (!this.o.traffic && !this.o.admission)) return null;
    const rsbs = [...s.rsbs.values()].filter((r) => r.outIf === ifname);
    const style = rsbs[0]?.style ?? 'WF';
    const senders = [...s.psbs.values()].filter((q) => q.outIf === ifname).map((q) => ({ kind: 'FILTER_SPEC' as const, source: q.template.source, port: q.template.port }));
    const want = mergeReservations(s.key, ifname, style, rsbs, senders);
    if (cause) {
      const k = reservationKey(s.key, ifname, style === 'FF' ? senderKey(cause.filters[0]!) : undefined);
      want.sort((a, b) => (a.key === k ? -1 : b.key === k ? 1 : 0));
    }
    const keep = new Set(want.map((w) => w.key));
    for (const w of want) {
      const have = s.installed.get(w.key);
      if (have && sameFlowspec(have.flowspec, w.flowspec) && sameFilters(have.filters, w.filters)) continue;
      const mine = w.sender === null ? rsbs : rsbs.filter((r) => senderKey(r.filters[0]!) === w.sender);
      const who = cause && mine.includes(cause) ? cause : mine[0]!;
      const verdict = this.o.admission?.admit({ key: w.key, ifname, flowspec: w.flowspec, previous: have?.flowspec ?? null, identity: who.identity }) ?? { ok: true as const };
      if (!verdict.ok) {
        if (cause) return { code: verdict.code, value: verdict.value };
        continue; // a shrink refused: what is installed stays until the next change
      }
      const t: Installed = { ifname, style, flowspec: w.flowspec, filters: w.filters, gen: ++this.gen, cause: who };
      s.installed.set(w.key, t);
      this.traffic.update({ key: w.key, ifname, session: s.session, style, flowspec: w.flowspec, filters: w.filters }, () => this.trafficFailed(s.key, w.key, t));
    }
    for (const [key, t] of s.installed) {
      if (t.ifname !== ifname || keep.has(key)) continue;
      s.installed.delete(key);
      this.o.admission?.release(key);
      this.traffic.remove(key);
    }
    return null;
  }

  /** Traffic control refused an update (section 3.11.2 of the processing rules: code 21): the
   * reservation that made the change goes, and its next hop hears why. */
  private trafficFailed(sk: string, key: string, t: Installed): void {
    const s = this.sessions.get(sk);
    if (!s || s.installed.get(key) !== t) return; // superseded meanwhile
    const r = t.cause;
    if (!r || s.rsbs.get(r.key) !== r) return;
    this.dropRsb(s, r, 'tear');
    if (r.nhop) this.sendResvErr(s.session, r.nhop.address, r.outIf, { code: ERROR_CODES.TRAFFIC_CONTROL, value: 0, flags: 0 }, r.style, r);
    s.installed.delete(key); // so the merge without it is installed afresh
    this.reconcile(s);
  }

  /** Sends each previous hop the merged Resv when it changed (ResvTear for what it no longer
   * asks), keeps refreshing it every R, and routes a confirmation request. */
  private reconcileUpstream(s: Sess, ask?: ConfirmAsk): void {
    const byPhop = new Map<string, Psb[]>();
    for (const q of s.psbs.values()) {
      if (!q.phop) continue;
      const k = `${q.phop.address}%${q.inIf}`;
      const l = byPhop.get(k);
      if (l) l.push(q); else byPhop.set(k, [q]);
    }
    const rsbs = [...s.rsbs.values()];
    const style = rsbs[0]?.style ?? 'WF';
    const blockade = (k: string) => s.blockades.get(k)?.qb;
    const confirm = ask?.receiver ?? s.confirm;
    let carried = false;
    for (const [k, psbs] of byPhop) {
      const first = psbs[0]!;
      const ds: Descriptor[] = rsbs.length ? mergeUpstream(style, rsbs, psbs, blockade, first.phop!.address) : [];
      const canon = ds.length ? JSON.stringify([style, ds]) : '';
      const up = s.upstream.get(k);
      if ((up?.canon ?? '') === canon) continue;
      if (up && (!ds.length || up.style !== style)) this.sendUp(s, up, 'tear', up.ds);
      else if (up?.style === 'FF') { // senders no longer asked for are torn explicitly: FF state is per sender
        const now = new Set(ds.map((d) => senderKey(d.filters[0]!)));
        const gone = up.ds.filter((d) => !now.has(senderKey(d.filters[0]!)));
        if (gone.length) this.sendUp(s, up, 'tear', gone);
      }
      if (!ds.length) { if (up) { this.deadlines.cancel(up.refresh); s.upstream.delete(k); } continue; }
      const u: Upstream = up ?? { phop: first.phop!, inIf: first.inIf!, style, ds, canon, refresh: new Deadline(() => { this.sendUp(s, u, 'refresh', u.ds); this.deadlines.after(u.refresh, this.jitter()); }) };
      Object.assign(u, { phop: first.phop!, inIf: first.inIf!, style, ds, canon });
      s.upstream.set(k, u);
      this.sendUp(s, u, confirm ? 'confirm' : 'refresh', ds, confirm);
      carried ||= !!confirm;
      this.deadlines.after(u.refresh, this.jitter());
    }
    for (const [k, up] of s.upstream) if (!byPhop.has(k)) { this.deadlines.cancel(up.refresh); s.upstream.delete(k); } // its path state is gone
    if (carried) s.confirm = null;
    // nothing had to go upstream: the reservation is in place here (a merge point, or the
    // sender host), so this node confirms it (section 3.1.8 of the processing rules)
    if (ask?.answerHere && !carried) this.sendResvConf(s, ask.receiver);
  }

  private sendUp(s: Sess, u: Upstream, what: 'refresh' | 'confirm' | 'tear', ds: Descriptor[], confirm: string | null = null): void {
    const hop: Hop = { kind: 'RSVP_HOP', address: this.addressOn(u.inIf, s.session), lih: u.phop.lih };
    const m = what === 'tear' ? resvTearMsg(s.session, hop, u.style, ds) : resvMsg(s.session, hop, this.R, confirm, this.policiesFor(s), u.style, ds);
    this.send(m, u.inIf, u.phop.address, hop.address, 64, false);
  }

  /** The POLICY_DATA going upstream: what the reservations merged here brought (one copy each). */
  private policiesFor(s: Sess): PolicyData[] {
    const seen = new Map<string, PolicyData>();
    for (const r of s.rsbs.values()) for (const p of r.policies) seen.set(JSON.stringify(p), p);
    return [...seen.values()];
  }

  private sendResvConf(s: Sess, receiver: string): void {
    const node = this.addressOn(null, s.session);
    const rsbs = [...s.rsbs.values()].filter((r) => r.nhop);
    const style = rsbs[0]?.style ?? 'WF';
    const ds = rsbs.map((r) => ({ flowspec: r.flowspec, filters: r.filters }));
    const error: ErrorSpec = { kind: 'ERROR_SPEC', node, flags: 0, code: ERROR_CODES.CONFIRMATION, value: 0 };
    this.send(resvConfMsg(s.session, error, receiver, style, style === 'FF' ? ds : ds.slice(0, 1)), null, receiver, node, 64, false);
  }

  // ---- errors and confirmation ----------------------------------------------------------

  /** ResvErr toward a next hop; `err.node` given: forwarded, naming the node that found it. */
  private sendResvErr(session: Session, to: string, outIf: string, err: { code: number; value: number; flags: number; node?: string }, style: StyleName, d: Descriptor | null): void {
    const me = this.addressOn(outIf, session);
    const hop = this.hopOn(outIf, session) ?? { kind: 'RSVP_HOP' as const, address: me, lih: 0 };
    const error: ErrorSpec = { kind: 'ERROR_SPEC', node: err.node ?? me, flags: err.flags, code: err.code, value: err.value };
    this.send(resvErrMsg(session, hop, error, style, d), outIf === LOCAL ? null : outIf, to, me, 64, false);
  }

  private onResvErr(i: Inbound, p: Picked, session: Session): void {
    const e = p.error;
    if (!e) return;
    if (this.o.role === 'host') { this.emit({ kind: 'resv-error', session, code: e.code, value: e.value, node: e.node }); return; }
    const s = this.sessions.get(sessionKey(session));
    if (!s || !p.style || !STYLES.has(p.style)) return;
    const style = p.style as StyleName;
    const phop = p.hop?.address ?? i.src;
    const senders = new Set(p.descriptors.flatMap((d) => d.filters).map(senderKey));
    const fromPhop = [...s.psbs.values()].filter((q) => q.phop?.address === phop);
    const outs = new Set(fromPhop.map((q) => q.outIf));
    const qe = p.descriptors[0]?.flowspec ?? null;
    if (e.code === ERROR_CODES.ADMISSION && qe) { // blockade state (section 3.5)
      for (const k of style === 'WF' ? [phop] : senders) this.blockade(s, k, qe);
    }
    const hit = [...s.rsbs.values()].filter((r) => r.nhop && outs.has(r.outIf)
      && (style === 'WF' || r.filters.some((f) => senders.has(senderKey(f))))
      && (e.code !== ERROR_CODES.ADMISSION || !qe || blockades(qe, r.flowspec)));
    const sent = new Set<string>();
    for (const r of hit) {
      const k = `${r.nhop!.address}|${r.outIf}`;
      if (sent.has(k)) continue;
      sent.add(k);
      const d = { flowspec: qe ?? r.flowspec, filters: style === 'WF' ? [] : r.filters.filter((f) => senders.has(senderKey(f))) };
      this.sendResvErr(session, r.nhop!.address, r.outIf, e, style, d);
    }
    if (e.code === ERROR_CODES.ADMISSION && qe) this.reconcileUpstream(s);
  }

  private blockade(s: Sess, key: string, qb: Flowspec): void {
    let b = s.blockades.get(key);
    if (!b) {
      const made: Blockade = { qb, expire: new Deadline(() => { s.blockades.delete(key); this.reconcile(s); }) };
      b = made;
      s.blockades.set(key, b);
    }
    b.qb = qb;
    this.deadlines.after(b.expire, KB * this.R);
  }

  private onResvConf(i: Inbound, p: Picked, session: Session): void {
    if (!this.own.has(i.dst) || !p.confirm) return;
    this.emit({ kind: 'confirm', session, receiver: p.confirm });
  }

  // ---- plumbing -------------------------------------------------------------------------

  private send(msg: RsvpMessage, ifname: string | null, dst: string, src: string, ttl: number, routerAlert: boolean): void {
    msg.sendTtl = ttl;
    this.o.send({ msg, ifname, dst, src, ttl, routerAlert });
  }

  private sess(session: Session): Sess {
    const key = sessionKey(session);
    let s = this.sessions.get(key);
    if (!s) {
      s = { key, session, psbs: new Map(), rsbs: new Map(), installed: new Map(), upstream: new Map(), blockades: new Map(), confirm: null };
      this.sessions.set(key, s);
    }
    return s;
  }

  private gc(s: Sess): void {
    if (!s.psbs.size && !s.rsbs.size && !s.installed.size && !s.upstream.size && !s.blockades.size && this.sessions.get(s.key) === s) this.sessions.delete(s.key);
  }

  /** L = (K + 0.5) * 1.5 * R of the message's sender (section 3.7). */
  private lifetime(refreshMs: number | undefined): number {
    return (this.K + 0.5) * 1.5 * (refreshMs || DEFAULT_R);
  }

  /** A refresh is sent 0.5 R to 1.5 R after the last (section 3.7: against synchronisation). */
  private jitter(): number {
    return this.R * (0.5 + this.random());
  }

  /** This node's address on an interface, of the session's family (null: the first interface). */
  private addressOn(ifname: string | null, session: Session): string {
    const i = (ifname && this.byName.get(ifname)) || this.o.interfaces[0];
    const v6 = session.destination.includes(':');
    return i?.addresses.find((a) => a.includes(':') === v6) ?? i?.addresses[0] ?? '0.0.0.0';
  }

  private hopOn(ifname: string | null, session: Session): Hop | null {
    const i = ifname ? this.byName.get(ifname) : undefined;
    return i ? { kind: 'RSVP_HOP', address: this.addressOn(ifname, session), lih: i.lih } : null;
  }

  private emit(e: RsvpEvent): void {
    this.o.onEvent?.(e);
  }
}
