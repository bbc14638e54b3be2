/* Reservations for programs that never asked (docs/rsvp.md, "Reservations for programs that
 * never asked"): when the policy decides a TCP or UDP socket with `reserve`, the daemon becomes
 * that socket's RSVP sender (seed 002: "for TCP and connected UDP clients, the flow
 * classification is implicitly provided via a connect call"): once the socket's 5-tuple is
 * known it sends Path with the TSpec the action gives, or with seed 001's on-line estimate of
 * the live flow (`characterize: true`, re-advertised when it grows at once, when it shrinks after
 * a hold); the Resv that comes back is installed on this host (host.ts) and the flow is marked
 * from then on. The socket itself stays best effort until then: its reply carries no mark.
 * The sender goes (PathTear) when the socket closes or the process exits.
 *
 * Like tc/attach.ts it follows the flow table's events, never the decision path, and reads the
 * 5-tuple from the kernel (/proc/PID/fd/FD and /proc/PID/net). Status notifications of these
 * sessions are published on the flow-event hub with the flow they are for. */

import type { Logger } from 'pino';
import { LiveCapture } from '../capture/live.js';
import { OnlineLbap, Readvertiser } from '../characterize/online.js';
import type { FlowEvent } from '../daemon/flow-events.js';
import type { Flow } from '../daemon/flows.js';
import { procLookup, tupleOnceConnected, type FiveTuple, type SocketLookup } from '../tc/attach.js';
import type { RsvpHost } from './host.js';
import type { TokenBucket } from './intserv.js';
import type { ReserveRequest } from './reserve-request.js';
import { tspecFor } from './reserve-request.js';
import type { StatusEvent } from './status.js';
import { connections } from './connections.js';
import { tcpReservation } from './support.js';

/** live characterisations (a tcpdump each) one user's programs may run at once */
export const CAPTURES_PER_USER = 4;
/** sockets of one user being attached or attached (each holds timers, then a session) */
export const SOCKETS_PER_USER = 256;

export interface RsvpAttachOptions {
  /** how often a characterised flow's estimate is taken (and re-advertised if it grew), ms */
  estimateMs?: number;
  /** how long a smaller estimate waits before it is advertised (seed 001), s */
  holdS?: number;
  log?: Logger;
  lookup?: SocketLookup;
  /** where a notification for a socket's session goes (the flow-event hub) */
  publish?: (e: FlowEvent) => void;
}

interface Held { flow: Readonly<Flow>; id: number | null; capture: LiveCapture | null; timer: NodeJS.Timeout | null; /** it holds one of its user's captures */ counted: boolean }

export class RsvpAttach {
  private readonly held = new Map<string, Held>();
  private readonly captures = new Map<number, number>();
  private readonly perUser = new Map<number, number>();
  /** sockets that got a session, those that could not (logged with why), and those past their user's bound */
  attached = 0;
  failed = 0;
  overLimit = 0;

  constructor(private readonly host: RsvpHost, private readonly o: RsvpAttachOptions = {}) {}

  /** The flow-event subscriber. */
  readonly onEvent = (e: FlowEvent): void => {
    const f = e.flow;
    const key = `${f.pid}/${f.fd}`;
    if (e.kind === 'closed') { this.drop(key); return; }
    if (e.kind !== 'decided') return;
    const want = e.decision?.reserve;
    if (!want || !f.remote || (f.proto !== 'tcp' && f.proto !== 'udp') || this.held.has(key)) return;
    const n = this.perUser.get(f.uid) ?? 0;
    if (n >= SOCKETS_PER_USER) { this.overLimit++; return; }
    this.perUser.set(f.uid, n + 1);
    const h: Held = { flow: f, id: null, capture: null, timer: null, counted: false };
    this.held.set(key, h);
    void this.attach(key, h, want, e.rule).catch((err: unknown) => {
      this.failed++;
      this.o.log?.warn({ pid: f.pid, fd: f.fd, rule: e.rule, err: err instanceof Error ? err.message : String(err) }, 'cannot reserve for the socket');
      if (this.held.get(key) === h) this.drop(key); // (not a new socket on the same descriptor)
    });
  };

  /** A notification of one of its sessions, to the hub with its flow. */
  readonly onStatus = (s: StatusEvent): void => {
    for (const h of this.held.values()) if (h.id === s.id) this.o.publish?.({ kind: 'reservation', flow: h.flow, status: s });
  };

  /** Everything it holds goes (the daemon stops). */
  stop(): void {
    for (const k of [...this.held.keys()]) this.drop(k);
  }

  private drop(key: string): void {
    const h = this.held.get(key);
    if (!h) return;
    this.held.delete(key);
    const n = (this.perUser.get(h.flow.uid) ?? 1) - 1;
    if (n > 0) this.perUser.set(h.flow.uid, n); else this.perUser.delete(h.flow.uid);
    if (h.timer) clearInterval(h.timer);
    h.capture?.kill();
    if (h.counted) {
      h.counted = false;
      const n = (this.captures.get(h.flow.uid) ?? 1) - 1;
      if (n > 0) this.captures.set(h.flow.uid, n); else this.captures.delete(h.flow.uid);
    }
    if (h.id !== null) this.host.manager.close(h.id);
  }

  private async attach(key: string, h: Held, want: ReserveRequest, rule: string | null): Promise<void> {
    const f = h.flow;
    const lookup = this.o.lookup ?? procLookup;
    const tuple = await tupleOnceConnected(lookup, f, () => this.held.get(key) === h);
    if (tuple === undefined) return; // closed meanwhile
    if (!tuple) throw new Error('its local address never appeared (not connected, or gone)');
    const t = tuple;
    const source = t.src === '*' ? this.host.sourceFor(t.dst) : t.src;
    if (!source) throw new Error(`no route to ${t.dst}`);
    const open = (tspec: TokenBucket, tcp: { rttS: number; window: number } | null = null): boolean => {
      const m = this.host.openForProgram({ tcp,
        uid: f.uid, program: { pid: f.pid, fd: f.fd, exe: f.exe, uid: f.uid, user: f.user, rule }, dscp: want.dscp,
        session: { kind: 'SESSION', destination: t.dst, protocol: t.proto === 'tcp' ? 6 : 17, flags: 0, port: t.dport }, source, sport: t.sport, tspec,
      });
      if (!m) return false;
      h.id = m.id;
      this.attached++;
      this.o.log?.info({ pid: f.pid, fd: f.fd, rule, session: m.id, ...t }, 'RSVP sender for the socket');
      return true;
    };
    if (want.spec) {
      let tspec = tspecFor(want.spec, { proto: t.proto, ipv6: t.family === 6 });
      const tcp = t.proto === 'tcp' ? await this.tcpWindow(f.pid, t, tspec) : null;
      if (this.held.get(key) !== h) return; // closed while its round trip was read
      if (tcp) tspec = { ...tspec, b: Math.max(tspec.b, tcp.b) };
      if (!open(tspec, tcp && { rttS: tcp.rttS, window: tcp.window })) throw new Error(`uid ${f.uid} holds the most RSVP senders one user may`);
      return;
    }
    await this.characterize(key, h, t, open);
  }

  /** A TCP flow under a reservation (seed 001, "QoS for TCP connections"): the receiver paces
   * the sender with a window W_R = 2 RTT r, and the sender bursts b = W_R (1 - r / r_S) at its
   * access rate r_S (support.ts). The RTT is the kernel's for this connection (ss); r_S the
   * rate of the link it leaves by (--rsvp-link). Null when either is unknown. */
  private async tcpWindow(pid: number, t: FiveTuple, tspec: TokenBucket): Promise<{ rttS: number; window: number; b: number } | null> {
    const rS = this.host.linkRateFor(t.dst);
    if (!rS || rS <= tspec.r) return null;
    for (let i = 0; i < 5; i++) { // the first RTT sample comes with the handshake
      const c = (await connections({ pid, proto: 'tcp' })).find((x) => x.lport === t.sport && x.rport === t.dport);
      if (c?.rttS) {
        const w = tcpReservation({ rttS: c.rttS, r: tspec.r, rS, M: tspec.M });
        return { rttS: c.rttS, window: w.window, b: w.tspec.b };
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return null;
  }

  /** Seed 001's automatic TSpec retrieval: tcpdump on the interface the flow leaves by, the
   * on-line estimate every estimateMs, Path with the first and re-advertised as it changes. */
  private async characterize(key: string, h: Held, t: FiveTuple, open: (tspec: TokenBucket) => boolean): Promise<void> {
    const uid = h.flow.uid;
    if ((this.captures.get(uid) ?? 0) >= CAPTURES_PER_USER) throw new Error(`uid ${uid} runs ${CAPTURES_PER_USER} live characterisations already, the most one user may`);
    this.captures.set(uid, (this.captures.get(uid) ?? 0) + 1);
    h.counted = true;
    const lookup = this.o.lookup ?? procLookup;
    const dev = await lookup.route(t.dst, t.src);
    if (this.held.get(key) !== h) return; // closed meanwhile
    const host = (a: string) => `${t.family === 6 ? 'ip6' : 'ip'} and ${t.family === 6 ? 'ip6' : 'ip'} dst host ${a}`;
    const filter = `${host(t.dst)} and ${t.proto} dst port ${t.dport} and ${t.proto} src port ${t.sport}`;
    const lbap = new OnlineLbap();
    const adv = new Readvertiser(this.o.holdS ?? 120);
    const t0 = Date.now() / 1000;
    const capture = new LiveCapture({ iface: dev, filter }, (p) => lbap.add(Number(p.tsNs) / 1e9 - t0, p.ipLength));
    h.capture = capture;
    await capture.start();
    if (this.held.get(key) !== h) { capture.kill(); return; }
    h.timer = setInterval(() => {
      if (!lbap.packets) return;
      const now = Date.now() / 1000 - t0;
      const e = lbap.estimate(now);
      if (!adv.offer(now, e)) return;
      const tspec = { r: Math.max(1, e.r), b: Math.max(e.b, e.M), p: Math.max(e.p, e.r), m: Math.min(e.m, e.M), M: e.M };
      if (h.id === null) { if (!open(tspec)) this.drop(key); }
      else this.host.manager.updateTspec(h.id, tspec);
    }, this.o.estimateMs ?? 2000);
  }
}
