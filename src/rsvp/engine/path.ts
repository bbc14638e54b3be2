/* The engine's path side (RFC 2205 sections 3.1.3, 3.1.5, 3.1.6): path state per (session,
 * sender) from Path, or from this host's own sender(); Path forwarded downstream and refreshed
 * every R, the ADSPEC composed on the way (RFC 2210 section 3.3); PathTear; PathErr hop by
 * hop toward the sender. A change of path state reconciles the reservation side (resv.ts). */

import type { Adspec } from '../adspec.js';
import { ERROR_CODES, type ErrorSpec } from '../error-spec.js';
import type { SenderTemplate } from '../filter-spec.js';
import type { PolicyData } from '../policy-data.js';
import type { Session } from '../session.js';
import type { SenderTspec } from '../tspec.js';
import { type EngineCore, LOCAL, type Psb, type Sess } from './core.js';
import { pathErrMsg, pathMsg, pathTearMsg, type Picked } from './messages.js';
import type { ResvSide } from './resv.js';
import { senderKey, sessionKey } from './state.js';
import { Deadline } from './timers.js';
import type { Inbound } from './types.js';

/** A host's own sender: close() sends PathTear; update() advertises a new TSpec now. */
export interface SenderHandle { close(): void; update(tspec: SenderTspec): void }

/** A composed error term: the sum, held at 2^32 - 1, the largest the ADSPEC's 32-bit field
 * carries (a path whose terms overflow it is beyond any delay bound anyway). */
const sum32 = (a: number, b: number) => Math.min(a + b, 0xffffffff);

export class PathSide {
  constructor(private readonly c: EngineCore, private readonly r: ResvSide) {}

  /** Host, sender side: Path toward the destination now and every R (jittered); close() sends PathTear. */
  sender(a: { session: Session; sender: SenderTemplate; tspec: SenderTspec; adspec?: Adspec; policyData?: PolicyData; ttl?: number }): SenderHandle {
    const s = this.c.sess(a.session);
    const key = senderKey(a.sender);
    const old = s.psbs.get(key);
    if (old) this.dropPsb(s, old, 'tear', true);
    const policy = a.policyData ?? this.c.o.policyData;
    const psb: Psb = {
      key, template: a.sender, tspec: a.tspec, adspec: a.adspec ?? null, policies: policy ? [policy] : [],
      phop: null, inIf: null, outIf: this.c.o.routes.lookup(a.session.destination)?.ifname ?? null,
      ttl: a.ttl ?? 64, breakBit: false, content: '', expire: null, refresh: null,
    };
    s.psbs.set(key, psb); this.c.paths++;
    this.startPathRefresh(s, psb);
    return {
      close: () => { if (s.psbs.get(key) === psb) { this.dropPsb(s, psb, 'tear', true); this.r.reconcile(s); } },
      // a new TSpec goes out at once, in a Path that is not a teardown (seed 001's re-advertising)
      update: (tspec: SenderTspec) => { if (s.psbs.get(key) === psb) { psb.tspec = tspec; this.sendPath(s, psb); } },
    };
  }

  // ---- path state -----------------------------------------------------------------------

  onPath(i: Inbound, p: Picked, session: Session): void {
    if (!p.hop || !p.template || !p.tspec) return; // a Path with no sender descriptor sets up nothing
    const local = this.c.own.has(session.destination);
    if (!local && this.c.o.role === 'host') return; // hosts do not forward
    const key = senderKey(p.template);
    const known = this.c.sessions.get(sessionKey(session));
    const conflict = !known ? this.c.portsConflict(session) && ERROR_CODES.CONFLICTING_PORTS
      : !known.psbs.has(key) && this.senderPortsConflict(known, p.template) && ERROR_CODES.CONFLICTING_SENDER_PORTS;
    if (conflict) return this.refuse(i, p, session, conflict, 0); // its state is not installed
    if (!known?.psbs.has(key) && this.c.paths >= this.c.maxPaths) { this.c.pathsRefused++; return; } // a flood of new senders
    const s = known ?? this.c.sess(session);
    let psb = s.psbs.get(key);
    if (psb && !psb.phop) return; // our own Path come back: ours stays
    const outIf = local ? LOCAL : this.c.o.routes.lookup(session.destination)?.ifname ?? null;
    const content = JSON.stringify([p.hop, i.ifname, outIf, p.tspec, p.adspec ?? null, p.policies]);
    const fresh = !psb;
    if (!psb) {
      psb = { key, template: p.template, tspec: p.tspec, adspec: null, policies: [], phop: null, inIf: null, outIf: null, ttl: 0, breakBit: false, content: '', expire: null, refresh: null };
      const made = psb;
      psb.expire = new Deadline(() => { this.dropPsb(s, made, 'timeout', true); this.r.reconcile(s); });
      s.psbs.set(key, psb); this.c.paths++;
    }
    Object.assign(psb, { tspec: p.tspec, adspec: p.adspec ?? null, policies: p.policies, phop: p.hop, inIf: i.ifname, outIf, ttl: i.ttl - 1, breakBit: i.ttl !== i.msg.sendTtl });
    this.c.deadlines.after(psb.expire!, this.c.lifetime(p.refreshMs));
    if (!fresh && psb.content === content) return; // a refresh: nothing to pass on (routers refresh downstream by themselves, section 3.7)
    psb.content = content;
    if (local) this.c.emit({ kind: 'path', session, sender: psb.template, tspec: psb.tspec, adspec: psb.adspec, phop: p.hop.address });
    else this.startPathRefresh(s, psb); // a trigger: forward now
    this.r.reconcile(s);
  }

  /** The same sender address with port 0 in one Path and another port in the other (RFC 2205
   * appendix B, error 8). */
  private senderPortsConflict(s: Sess, t: SenderTemplate): boolean {
    for (const q of s.psbs.values()) if (q.template.source === t.source && (q.template.port === 0) !== (t.port === 0)) return true;
    return false;
  }

  /** PathErr for a Path not taken, to the previous hop it came from (RFC 2205 section 3.1.6):
   * conflicting ports, or an object this node does not know (section 3.10). */
  refuse(i: Inbound, p: Picked, session: Session, code: number, value: number): void {
    if (!p.hop) return;
    const node = this.c.addressOn(i.ifname, session);
    const error: ErrorSpec = { kind: 'ERROR_SPEC', node, flags: 0, code, value };
    this.c.send(pathErrMsg(session, error, p.template, p.tspec), i.ifname, p.hop.address, node, 64, false);
  }

  /** Sends Path downstream now and then every R, jittered. */
  private startPathRefresh(s: Sess, psb: Psb): void {
    if (psb.outIf === LOCAL) return;
    psb.refresh ??= new Deadline(() => { this.sendPath(s, psb); this.c.deadlines.after(psb.refresh!, this.c.jitter()); });
    this.sendPath(s, psb);
    this.c.deadlines.after(psb.refresh, this.c.jitter());
  }

  private sendPath(s: Sess, psb: Psb): void {
    if (!psb.phop && !psb.outIf) psb.outIf = this.c.o.routes.lookup(s.session.destination)?.ifname ?? null; // a local sender waits for a route
    const hop = this.c.hopOn(psb.outIf, s.session);
    if (!hop || psb.ttl < 1) return; // no route, or the TTL is spent
    this.c.send(pathMsg({ ...psb, session: s.session, adspec: this.composeAdspec(psb) }, hop, this.c.R, psb.ttl), psb.outIf, s.session.destination, psb.template.source, psb.ttl, true);
  }

  /** The ADSPEC going on (RFC 2210 section 3.3, RFC 2215 for the general parameters): a
   * router is one more IS hop; the path bandwidth is at most the outgoing link's rate and the
   * path MTU at most its MTU, where the interface says; the minimum path latency gains this
   * hop's, which we take as 0 (a router's own forwarding latency is not measured); a non-RSVP
   * hop before it breaks the composition (section 3.8 of RFC 2205). The Guaranteed fragment's
   * terms (RFC 2212 section 6) gain the outgoing interface's C and D: Ctot and Dtot sum every
   * hop's, Csum and Dsum the hops' since the last reshaping point, and as no node of ours
   * counts as one (none reshapes a flow back to its TSpec before its queue), every hop adds to
   * both. An empty fragment or one with its break bit set passes as it came. */
  private composeAdspec(psb: Psb): Adspec | null {
    const a = psb.adspec;
    if (!a || !psb.phop) return a;
    const out = psb.outIf ? this.c.byName.get(psb.outIf) : undefined;
    const g = a.general;
    const t = a.gs?.terms;
    const e = out?.gs;
    return {
      ...a,
      ...(a.gs && t && e && !a.gs.breakBit ? { gs: { ...a.gs, terms: { ctot: sum32(t.ctot, e.c), dtot: sum32(t.dtot, e.d), csum: sum32(t.csum, e.c), dsum: sum32(t.dsum, e.d) } } } : {}),
      general: {
        ...g, hopCount: g.hopCount + 1, breakBit: g.breakBit || psb.breakBit,
        // a float the ADSPEC's 32-bit field holds exactly (the encoder takes no other)
        pathBw: out?.rate ? Math.min(g.pathBw, Math.fround(out.rate)) : g.pathBw,
        mtu: out?.mtu ? Math.min(g.mtu, out.mtu) : g.mtu,
      },
    };
  }

  onPathTear(p: Picked, session: Session): void {
    const s = this.c.sessions.get(sessionKey(session));
    const psb = s && p.template ? s.psbs.get(senderKey(p.template)) : undefined;
    if (!s || !psb || !psb.phop || psb.phop.address !== p.hop?.address) return; // only the previous hop tears its path
    this.dropPsb(s, psb, 'tear', true);
    this.r.reconcile(s);
  }

  /** Deletes path state and the reservations that depended on it alone (section 3.1.5), and
   * sends PathTear on downstream. The caller reconciles. */
  dropPsb(s: Sess, psb: Psb, why: 'tear' | 'timeout', tear: boolean): void {
    if (psb.expire) this.c.deadlines.cancel(psb.expire);
    if (psb.refresh) this.c.deadlines.cancel(psb.refresh);
    if (s.psbs.delete(psb.key)) this.c.paths--;
    if (tear && psb.outIf !== LOCAL) {
      const hop = this.c.hopOn(psb.outIf, s.session);
      if (hop && psb.ttl >= 1) this.c.send(pathTearMsg(s.session, hop, psb.template, psb.ttl), psb.outIf, s.session.destination, psb.template.source, psb.ttl, true);
    }
    this.c.emit({ kind: 'path-gone', session: s.session, sender: psb.template, why });
    for (const r of [...s.rsbs.values()]) {
      if (!r.nhop || r.outIf !== psb.outIf) continue; // our own requests wait for path state to come back
      const left = r.filters.filter((f) => s.psbs.get(senderKey(f))?.outIf === r.outIf);
      if (r.style === 'WF' ? ![...s.psbs.values()].some((q) => q.outIf === r.outIf) : !left.length) this.r.dropRsb(s, r, why);
      else if (r.style === 'SE') r.filters = left;
    }
  }

  onPathErr(i: Inbound, p: Picked, session: Session): void {
    const s = this.c.sessions.get(sessionKey(session));
    const psb = s && p.template ? s.psbs.get(senderKey(p.template)) : undefined;
    if (psb?.phop) { // hop by hop toward the sender (section 3.1.6)
      this.c.send(i.msg, psb.inIf, psb.phop.address, this.c.addressOn(psb.inIf, session), 64, false);
      return;
    }
    if (p.error && (psb || this.c.o.role === 'host')) this.c.emit({ kind: 'path-error', session, code: p.error.code, value: p.error.value, node: p.error.node });
  }
}
