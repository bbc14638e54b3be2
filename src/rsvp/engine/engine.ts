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
 *
 * The work is split in three: the state blocks and plumbing both sides share (core.ts), the
 * path side (path.ts), the reservation side (resv.ts); this class is what the rest of qosd sees. */

import type { Adspec } from '../adspec.js';
import type { FilterSpec, SenderTemplate } from '../filter-spec.js';
import type { Flowspec } from '../flowspec.js';
import type { PolicyData } from '../policy-data.js';
import type { Session } from '../session.js';
import type { StyleName } from '../style.js';
import type { SenderTspec } from '../tspec.js';
import { EngineCore } from './core.js';
import { pick } from './messages.js';
import { PathSide, type SenderHandle } from './path.js';
import { ResvSide } from './resv.js';
import { sessionKey } from './state.js';
import type { Deadline } from './timers.js';
import type { EngineCounts, EngineOptions, Inbound } from './types.js';

export { LOCAL } from './core.js';
export type { SenderHandle } from './path.js';

export class RsvpEngine {
  private readonly c: EngineCore;
  private readonly path: PathSide;
  private readonly resv: ResvSide;

  constructor(o: EngineOptions) {
    this.c = new EngineCore(o);
    this.resv = new ResvSide(this.c);
    this.path = new PathSide(this.c, this.resv);
  }

  /** One received message (already decoded). */
  receive(i: Inbound): void {
    const p = pick(i.msg);
    if (!p.session) return; // nothing to file it under
    switch (i.msg.type) {
      case 'Path': return this.path.onPath(i, p, p.session);
      case 'PathTear': return this.path.onPathTear(p, p.session);
      case 'Resv': return this.resv.onResv(i, p, p.session);
      case 'ResvTear': return this.resv.onResvTear(i, p, p.session);
      case 'PathErr': return this.path.onPathErr(i, p, p.session);
      case 'ResvErr': return this.resv.onResvErr(i, p, p.session);
      case 'ResvConf': return this.resv.onResvConf(i, p, p.session);
    }
  }

  /** A Path or Resv this node rejects for an object it does not know (RFC 2205 section 3.10;
   * decoded without it: message.ts decodeSkippingUnknown): PathErr or ResvErr with `code` (13
   * unknown class, 14 unknown c-type) and `value` (class-num << 8 | c-type) to the hop it came
   * from, when its SESSION and RSVP_HOP could be read. Other types are not answered. */
  refuseUnknown(i: Inbound, code: number, value: number): void {
    const p = pick(i.msg);
    if (!p.session) return;
    if (i.msg.type === 'Path') this.path.refuse(i, p, p.session, code, value);
    else if (i.msg.type === 'Resv') this.resv.refuse(i, p, p.session, code, value);
  }

  /** Host, sender side: Path toward the destination now and every R (jittered); close() sends
   * PathTear, update() a Path with a new TSpec at once. */
  sender(a: { session: Session; sender: SenderTemplate; tspec: SenderTspec; adspec?: Adspec; policyData?: PolicyData; ttl?: number }): SenderHandle {
    return this.path.sender(a);
  }

  /** Host, receiver side: Resv to the previous hop of each matching path state, now, when path
   * state arrives and every R; close() sends ResvTear. */
  reserve(a: { session: Session; style: StyleName; descriptors: { flowspec: Flowspec; filters: FilterSpec[] }[]; confirm?: boolean; policyData?: PolicyData }): { close(): void } {
    return this.resv.reserve(a);
  }

  /** The path state a session holds from senders elsewhere (what a receiver here has heard):
   * each sender, its TSpec and the ADSPEC that came with it. */
  pathsOf(session: Session): { sender: SenderTemplate; tspec: SenderTspec; adspec: Adspec | null }[] {
    const s = this.c.sessions.get(sessionKey(session));
    return s ? [...s.psbs.values()].filter((p) => p.phop !== null).map((p) => ({ sender: p.template, tspec: p.tspec, adspec: p.adspec })) : [];
  }

  counts(): EngineCounts {
    const c: EngineCounts = { sessions: this.c.sessions.size, psb: 0, rsb: 0, tcsb: 0, blockades: 0, paths_refused: this.c.pathsRefused };
    for (const s of this.c.sessions.values()) {
      c.psb += s.psbs.size; c.rsb += s.rsbs.size; c.tcsb += s.installed.size; c.blockades += s.blockades.size;
    }
    return c;
  }

  /** A JSON-able dump of the state blocks, for `qos rsvp status --json`. */
  state(): unknown {
    const now = this.c.o.clock.now();
    const left = (d: Deadline | null) => (d?.pending ? Math.round(d.at - now) : null);
    return {
      role: this.c.o.role, refreshMs: this.c.R, counts: this.counts(), trafficPending: this.c.traffic.pending,
      sessions: [...this.c.sessions.values()].map((s) => ({
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
    this.c.deadlines.stop();
  }

}
