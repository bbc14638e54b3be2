/* The engine's reservation side (RFC 2205 sections 3.1.4, 3.1.7, 3.1.8, 3.5): reservation
 * state per (session, next hop, interface, FF sender) from Resv, or from this host's own
 * reserve(); merged per outgoing interface by style, through admission to traffic control;
 * the merged Resv upstream per previous hop, refreshed every R; ResvTear; ResvErr with
 * blockade state; confirmation. */

import { ERROR_CODES, ERROR_IN_PLACE, type ErrorSpec } from '../error-spec.js';
import type { FilterSpec } from '../filter-spec.js';
import type { Flowspec } from '../flowspec.js';
import type { Hop } from '../hop.js';
import type { PolicyData } from '../policy-data.js';
import type { Session } from '../session.js';
import { STYLE_VECTORS, type StyleName } from '../style.js';
import { type Blockade, type ConfirmAsk, type EngineCore, type Installed, KB, LOCAL, type Psb, type Rsb, type Sess, STYLES, type Upstream } from './core.js';
import { type Descriptor, type Picked, resvConfMsg, resvErrMsg, resvMsg, resvTearMsg } from './messages.js';
import { blockades, identityOf, mergeReservations, mergeUpstream, reservationKey, sameFilters, sameFlowspec, senderKey, sessionKey, sortFilters } from './state.js';
import { Deadline } from './timers.js';
import type { Inbound } from './types.js';

export class ResvSide {
  constructor(private readonly c: EngineCore) {}

  /** Host, receiver side: Resv to the previous hop of each matching path state, now, when path
   * state arrives and every R; close() sends ResvTear. */
  reserve(a: { session: Session; style: StyleName; descriptors: { flowspec: Flowspec; filters: FilterSpec[] }[]; confirm?: boolean; policyData?: PolicyData }): { close(): void } {
    const s = this.c.sess(a.session);
    const policy = a.policyData ?? this.c.o.policyData;
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
    if (a.confirm) s.confirm = this.c.addressOn(null, a.session); // this host's own address: a multicast destination is not one
    this.reconcileUpstream(s);
    return {
      close: () => {
        for (const r of mine) if (s.rsbs.get(r.key) === r) s.rsbs.delete(r.key);
        this.reconcileUpstream(s);
        this.c.gc(s);
      },
    };
  }

  // ---- reservation state ----------------------------------------------------------------

  onResv(i: Inbound, p: Picked, session: Session): void {
    const nhop = p.hop;
    if (!nhop) return;
    const outIf = this.c.byLih.get(nhop.lih)?.name ?? i.ifname; // the LIH we put in Path comes back (section 3.1.3)
    const refuse = (code: number, value: number, style: StyleName, d: Descriptor | null) =>
      this.sendResvErr(session, nhop.address, outIf, { code, value, flags: 0 }, style, d);
    if (!p.style || !STYLES.has(p.style)) return refuse(ERROR_CODES.UNKNOWN_STYLE, 0, 'WF', null);
    const style = p.style as StyleName;
    const s = this.c.sessions.get(sessionKey(session));
    const routed = s ? [...s.psbs.values()].filter((q) => q.outIf === outIf) : [];
    if (!s || !routed.length) return refuse(ERROR_CODES.NO_PATH, 0, style, p.descriptors[0] ?? null);
    // the value is the low 16 bits of the existing style's option vector (RFC 2205 appendix B)
    const other = [...s.rsbs.values()].find((r) => r.style !== style);
    if (other) return refuse(ERROR_CODES.CONFLICTING_STYLE, STYLE_VECTORS[other.style] & 0xffff, style, p.descriptors[0] ?? null);
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
    if (this.c.o.role === 'host') for (const r of changed) this.c.emit({ kind: 'resv', session, style: r.style, flowspec: r.flowspec, filters: r.filters });
  }

  /** ResvErr for a Resv not taken because of an object this node does not know (RFC 2205
   * section 3.10), to the next hop it came from; the style as far as it could be read. */
  refuse(i: Inbound, p: Picked, session: Session, code: number, value: number): void {
    if (!p.hop) return;
    const style = p.style && STYLES.has(p.style) ? p.style as StyleName : 'WF';
    this.sendResvErr(session, p.hop.address, this.c.byLih.get(p.hop.lih)?.name ?? i.ifname, { code, value, flags: 0 }, style, p.descriptors[0] ?? null);
  }

  /** Files one reservation request and makes traffic control follow; a refusal puts back what
   * was there before (the first killer-reservation rule, section 2.5) and answers ResvErr. */
  private applyRsb(s: Sess, want: Rsb, refreshMs: number | undefined): 'refresh' | 'changed' | 'refused' {
    const old = s.rsbs.get(want.key);
    if (old) this.c.deadlines.after(old.expire!, this.c.lifetime(refreshMs));
    if (old && sameFlowspec(old.flowspec, want.flowspec) && sameFilters(old.filters, want.filters) && JSON.stringify(old.identity) === JSON.stringify(want.identity)) return 'refresh';
    const before = old && { flowspec: old.flowspec, filters: old.filters, policies: old.policies, identity: old.identity };
    const rsb = old ?? want;
    Object.assign(rsb, { flowspec: want.flowspec, filters: want.filters, policies: want.policies, identity: want.identity });
    if (!old) {
      rsb.expire = new Deadline(() => { this.dropRsb(s, rsb, 'timeout'); this.reconcile(s); });
      this.c.deadlines.after(rsb.expire, this.c.lifetime(refreshMs));
      s.rsbs.set(rsb.key, rsb);
    }
    const refused = this.reconcileTc(s, rsb.outIf, rsb);
    if (!refused) return 'changed';
    if (before) Object.assign(rsb, before);
    else { this.c.deadlines.cancel(rsb.expire!); s.rsbs.delete(rsb.key); }
    this.reconcileTc(s, rsb.outIf, null);
    this.sendResvErr(s.session, rsb.nhop!.address, rsb.outIf, { ...refused, flags: before ? ERROR_IN_PLACE : 0 }, rsb.style, want);
    return 'refused';
  }

  onResvTear(i: Inbound, p: Picked, session: Session): void {
    const s = this.c.sessions.get(sessionKey(session));
    if (!s || !p.hop || !p.style || !STYLES.has(p.style)) return;
    const outIf = this.c.byLih.get(p.hop.lih)?.name ?? i.ifname;
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
  dropRsb(s: Sess, r: Rsb, why: 'tear' | 'timeout'): void {
    if (r.expire) this.c.deadlines.cancel(r.expire);
    if (s.rsbs.get(r.key) === r) s.rsbs.delete(r.key);
    this.c.emit({ kind: 'resv-gone', session: s.session, why });
  }

  // ---- merging: traffic control and upstream ----------------------------------------------

  /** After any change of a session's state: traffic control on every interface, the Resv
   * upstream, and the session dropped when nothing is left. */
  reconcile(s: Sess): void {
    const ifs = new Set<string>();
    for (const r of s.rsbs.values()) ifs.add(r.outIf);
    for (const t of s.installed.values()) ifs.add(t.ifname);
    for (const f of ifs) this.reconcileTc(s, f, null);
    this.reconcileUpstream(s);
    this.c.gc(s);
  }

  /** Makes traffic control on one interface hold the merge of the session's reservations there.
   * With `cause`, the change it makes is judged first and a refusal stops there (returned). */
  private reconcileTc(s: Sess, ifname: string, cause: Rsb | null): { code: number; value: number } | null {
    if (ifname === LOCAL || (!this.c.o.traffic && !this.c.o.admission)) return null;
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
      const verdict = this.c.o.admission?.admit({ key: w.key, ifname, session: s.session, flowspec: w.flowspec, previous: have?.flowspec ?? null, identity: who.identity }) ?? { ok: true as const };
      if (!verdict.ok) {
        if (cause) return { code: verdict.code, value: verdict.value };
        continue; // a shrink refused: what is installed stays until the next change
      }
      const t: Installed = { ifname, style, flowspec: w.flowspec, filters: w.filters, gen: ++this.c.gen, cause: who };
      s.installed.set(w.key, t);
      this.c.traffic.update({ key: w.key, ifname, session: s.session, style, flowspec: w.flowspec, filters: w.filters }, () => this.trafficFailed(s.key, w.key, t));
    }
    for (const [key, t] of s.installed) {
      if (t.ifname !== ifname || keep.has(key)) continue;
      s.installed.delete(key);
      this.c.o.admission?.release(key);
      this.c.traffic.remove(key);
    }
    return null;
  }

  /** Traffic control refused an update (section 3.11.2 of the processing rules: code 21): the
   * reservation that made the change goes, and its next hop hears why. */
  private trafficFailed(sk: string, key: string, t: Installed): void {
    const s = this.c.sessions.get(sk);
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
      if (!ds.length) { if (up) { this.c.deadlines.cancel(up.refresh); s.upstream.delete(k); } continue; }
      const u: Upstream = up ?? { phop: first.phop!, inIf: first.inIf!, style, ds, canon, refresh: new Deadline(() => { this.sendUp(s, u, 'refresh', u.ds); this.c.deadlines.after(u.refresh, this.c.jitter()); }) };
      Object.assign(u, { phop: first.phop!, inIf: first.inIf!, style, ds, canon });
      s.upstream.set(k, u);
      this.sendUp(s, u, confirm ? 'confirm' : 'refresh', ds, confirm);
      carried ||= !!confirm;
      this.c.deadlines.after(u.refresh, this.c.jitter());
    }
    for (const [k, up] of s.upstream) if (!byPhop.has(k)) { this.c.deadlines.cancel(up.refresh); s.upstream.delete(k); } // its path state is gone
    if (carried) s.confirm = null;
    // nothing had to go upstream: the reservation is in place here (a merge point, or the
    // sender host), so this node confirms it (section 3.1.8 of the processing rules)
    if (ask?.answerHere && !carried) this.sendResvConf(s, ask.receiver);
  }

  private sendUp(s: Sess, u: Upstream, what: 'refresh' | 'confirm' | 'tear', ds: Descriptor[], confirm: string | null = null): void {
    const hop: Hop = { kind: 'RSVP_HOP', address: this.c.addressOn(u.inIf, s.session), lih: u.phop.lih };
    const m = what === 'tear' ? resvTearMsg(s.session, hop, u.style, ds) : resvMsg(s.session, hop, this.c.R, confirm, this.policiesFor(s), u.style, ds);
    this.c.send(m, u.inIf, u.phop.address, hop.address, 64, false);
  }

  /** The POLICY_DATA going upstream: what the reservations merged here brought (one copy each). */
  private policiesFor(s: Sess): PolicyData[] {
    const seen = new Map<string, PolicyData>();
    for (const r of s.rsbs.values()) for (const p of r.policies) seen.set(JSON.stringify(p), p);
    return [...seen.values()];
  }

  private sendResvConf(s: Sess, receiver: string): void {
    const node = this.c.addressOn(null, s.session);
    const rsbs = [...s.rsbs.values()].filter((r) => r.nhop);
    const style = rsbs[0]?.style ?? 'WF';
    const ds = rsbs.map((r) => ({ flowspec: r.flowspec, filters: r.filters }));
    const error: ErrorSpec = { kind: 'ERROR_SPEC', node, flags: 0, code: ERROR_CODES.CONFIRMATION, value: 0 };
    this.c.send(resvConfMsg(s.session, error, receiver, style, style === 'FF' ? ds : ds.slice(0, 1)), null, receiver, node, 64, false);
  }

  // ---- errors and confirmation ----------------------------------------------------------

  /** ResvErr toward a next hop; `err.node` given: forwarded, naming the node that found it. */
  private sendResvErr(session: Session, to: string, outIf: string, err: { code: number; value: number; flags: number; node?: string }, style: StyleName, d: Descriptor | null): void {
    const me = this.c.addressOn(outIf, session);
    const hop = this.c.hopOn(outIf, session) ?? { kind: 'RSVP_HOP' as const, address: me, lih: 0 };
    const error: ErrorSpec = { kind: 'ERROR_SPEC', node: err.node ?? me, flags: err.flags, code: err.code, value: err.value };
    this.c.send(resvErrMsg(session, hop, error, style, d), outIf === LOCAL ? null : outIf, to, me, 64, false);
  }

  onResvErr(i: Inbound, p: Picked, session: Session): void {
    const e = p.error;
    if (!e) return;
    if (this.c.o.role === 'host') { this.c.emit({ kind: 'resv-error', session, code: e.code, value: e.value, node: e.node }); return; }
    const s = this.c.sessions.get(sessionKey(session));
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
    this.c.deadlines.after(b.expire, KB * this.c.R);
  }

  onResvConf(i: Inbound, p: Picked, session: Session): void {
    if (!this.c.own.has(i.dst) || !p.confirm) return;
    this.c.emit({ kind: 'confirm', session, receiver: p.confirm });
  }
}
