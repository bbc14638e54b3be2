/* One RSVP node on this machine: the engine (engine/, pure) given the real world — the raw IP
 * transport with Router Alert and, if asked, the UDP encapsulation (transport.ts), the kernel's
 * routing table and interfaces (routes.ts), the codec between bytes and messages — for a host
 * (the daemon's part, host.ts) or a router (`qos rsvp router`, router.ts).
 *
 * What arrives is decoded here: a message that does not decode is counted by its error code
 * and dropped, never passed on; one rejected for an object we do not know (RFC 2205 section
 * 3.10) is answered, a Path with PathErr and a Resv with ResvErr (code 13 or 14). With keys,
 * INTEGRITY (RFC 2747, integrity-state.ts): what arrives is checked and what fails is counted
 * by why and dropped; what is sent is signed. What the engine sends is encoded with the send TTL in
 * its common header equal to the IP TTL, as RFC 2205 section 3.8 requires. */

import type { Logger } from 'pino';
import { type Clock, systemClock } from '../clock.js';
import { QosError } from '../errors.js';
import { RsvpEngine } from './engine/engine.js';
import type { Admission, EngineOptions, Inbound, Outbound, Routes, RsvpEvent, RsvpInterface, TrafficInstaller } from './engine/types.js';
import { decode, decodeSkippingUnknown, encode, type RsvpMessage } from './message.js';
import { IntegrityState } from './integrity-state.js';
import { UnknownObjectError } from './object.js';
import type { PolicyData } from './policy-data.js';
import { type RouteTable, systemRoutes } from './routes.js';
import { openRaw, openUdp, type Packet, type RsvpSocket } from './transport/index.js';

export interface NodeOptions {
  role: 'host' | 'router';
  clock?: Clock;
  /** R, ms (default 30,000) */
  refreshMs?: number;
  k?: number;
  /** transports: raw IP 46 (default) and/or the UDP encapsulation */
  raw?: boolean;
  udp?: boolean;
  traffic?: TrafficInstaller;
  admission?: Admission;
  policyData?: PolicyData;
  onEvent?: (e: RsvpEvent) => void;
  log?: Logger;
  /** how often the routing table and interfaces are read again (default 10 s) */
  routesEveryMs?: number;
  /** the raw transport's families (default both) */
  families?: (4 | 6)[];
  /** link rates by interface name, bytes/s (the router's --link and driver speeds): what the
   * ADSPEC's path bandwidth is composed with (the MTU comes from the routing table's read) */
  rates?: Map<string, number>;
  /** the Guaranteed Service error terms (C bytes, D microseconds) an interface, with its rate
   * from `rates` and its MTU, adds to the ADSPEC of a Path going out on it (RFC 2212 section
   * 6); undefined: none (the router's: its HTB's, router.ts gsTermsFor) */
  gsTerms?: (i: RsvpInterface) => { c: number; d: number } | undefined;
  /** INTEGRITY keys by key id (12 hex digits, RFC 2747): with them, every message sent is
   * signed with the first, and what arrives is checked (integrity-state.ts) */
  keys?: Map<string, Uint8Array>;
  /** with keys: drop what arrives without INTEGRITY too */
  requireIntegrity?: boolean;
}

export interface NodeCounts {
  received: number; sent: number; send_errors: number; undecodable: Record<string, number>;
  /** messages the engine built that the codec refused to encode (not sent; each logged) */
  unencodable: number;
  /** dropped by the INTEGRITY check, by why: missing, unknown_key, bad_digest, replay */
  integrity: Record<string, number>;
}

const MAX_UDP_PEERS = 4096;

export class RsvpNode {
  private readonly undecodable: Record<string, number> = {};
  private readonly integrityDrops: Record<string, number> = {};
  private integrity: IntegrityState | null = null;
  private received = 0;
  private unencodable = 0;
  private log: Logger | undefined;
  private stopped = false;
  private readonly udpPeers = new Set<string>();
  /** the transports it has, found once */
  private readonly raw: RsvpSocket | undefined;
  private readonly udp: RsvpSocket | undefined;

  private constructor(readonly engine: RsvpEngine, private readonly sockets: RsvpSocket[], private readonly timers: { cancel(): void }[], private readonly routes: RouteTable) {
    this.raw = sockets.find((x) => x.via === 'raw');
    this.udp = sockets.find((x) => x.via === 'udp');
  }

  /** The interface this node sends on toward destination and its MTU, or null (no route). */
  linkFor(destination: string): { ifname: string; mtu: number | null } | null {
    const r = this.routes.lookup(destination);
    if (!r) return null;
    return { ifname: r.ifname, mtu: this.routes.interfaces.find((i) => i.name === r.ifname)?.mtu ?? null };
  }

  /** The address this node sends from toward destination (its route's source), or null. */
  sourceFor(destination: string): string | null {
    return this.routes.lookup(destination)?.src ?? null;
  }

  static async open(o: NodeOptions): Promise<RsvpNode> {
    const clock = o.clock ?? systemClock;
    const routes = await systemRoutes();
    const sockets: RsvpSocket[] = [];
    try {
      if (o.raw !== false) sockets.push(await openRaw({ intercept: o.role === 'router', ...(o.families ? { families: o.families } : {}) }));
      if (o.udp) sockets.push(await openUdp({ role: o.role }));
    } catch (e) {
      for (const s of sockets) await s.close().catch(() => undefined);
      throw e;
    }
    if (!sockets.length) throw new QosError('QOS_ERR_USAGE', 'an RSVP node needs a transport: raw IP, UDP or both');
    let node: RsvpNode | undefined;
    const send = (out: Outbound) => node?.send(out);
    const eo: EngineOptions = {
      role: o.role, clock, routes, send,
      interfaces: routes.interfaces.map((i) => {
        const j = o.rates?.has(i.name) ? { ...i, rate: o.rates.get(i.name)! } : i;
        const gs = o.gsTerms?.(j);
        return gs ? { ...j, gs } : j;
      }),
      ...(o.traffic ? { traffic: o.traffic } : {}), ...(o.admission ? { admission: o.admission } : {}),
      ...(o.refreshMs ? { refreshMs: o.refreshMs } : {}), ...(o.k ? { k: o.k } : {}),
      // refreshes within R/100 of each other (300 ms of the default 30 s) go out in one turn
      // of the event loop, one write to the transport: a node holding thousands of sessions
      // wakes a few times a second, not once per refresh; still jittered over 0.5-1.5 R
      slackMs: (o.refreshMs ?? 30_000) / 100,
      ...(o.onEvent ? { onEvent: o.onEvent } : {}), ...(o.policyData ? { policyData: o.policyData } : {}),
    };
    const engine = new RsvpEngine(eo);
    // the routing table changes under a running node (links up and down): read it again
    const refresh = clock.every(o.routesEveryMs ?? 10_000, () => { routes.refresh().catch((e: unknown) => o.log?.warn({ err: String(e) }, 'reading the routing table failed')); });
    node = new RsvpNode(engine, sockets, [refresh], routes);
    if (o.keys?.size) node.integrity = new IntegrityState({ keys: o.keys, require: o.requireIntegrity ?? false });
    node.log = o.log;
    for (const s of sockets) s.onPacket((p: Packet) => node!.receive(p, o.log));
    return node;
  }

  private receive(p: Packet, log?: Logger): void {
    if (this.stopped) return;
    this.received++;
    if (p.via === 'udp') this.heardOnUdp(p.src);
    let msg;
    try {
      msg = decode(p.bytes);
    } catch (e) {
      const code = e instanceof QosError ? e.code : 'QOS_ERR_INTERNAL';
      this.undecodable[code] = (this.undecodable[code] ?? 0) + 1;
      log?.debug({ src: p.src, ifname: p.ifname, err: String(e) }, 'an RSVP packet that does not decode, dropped');
      if (e instanceof UnknownObjectError) this.answerUnknown(p, e);
      return;
    }
    if (!this.integrityOk(p, msg)) return;
    this.engine.receive(this.inbound(p, msg));
  }

  /** A Path or Resv rejected for an object we do not know (RFC 2205 section 3.10) is answered
   * with PathErr or ResvErr 13 (unknown class) or 14 (unknown c-type), the value class-num << 8
   * | c-type, when the rest of it reads (the engine needs its SESSION and RSVP_HOP). */
  private answerUnknown(p: Packet, e: UnknownObjectError): void {
    let msg;
    try { msg = decodeSkippingUnknown(p.bytes).message; } catch { return; }
    if (!this.integrityOk(p, msg)) return;
    this.engine.refuseUnknown(this.inbound(p, msg), e.errorCode, (e.classNum << 8) | e.cType);
  }

  /** With keys, the INTEGRITY check (RFC 2747): a message failing it is counted by why and dropped. */
  private integrityOk(p: Packet, msg: RsvpMessage): boolean {
    const drop = this.integrity?.check(p.bytes, msg, p.src);
    if (!drop) return true;
    this.integrityDrops[drop] = (this.integrityDrops[drop] ?? 0) + 1;
    return false;
  }

  private inbound(p: Packet, msg: RsvpMessage): Inbound {
    return { msg, ifname: p.ifname, src: p.src, dst: p.dst, ttl: p.ttl, routerAlert: p.routerAlert };
  }

  private send(out: Outbound): void {
    if (this.stopped) return;
    const m = { ...out.msg, sendTtl: out.ttl };
    let bytes: Uint8Array;
    try {
      bytes = this.integrity ? this.integrity.sign(m) : encode(m);
    } catch (e) {
      // a message the engine built from values the codec refuses: counted and logged, never a
      // crash of the daemon or router holding every other session
      this.unencodable++;
      this.log?.warn({ type: out.msg.type, dst: out.dst, err: String(e) }, 'an RSVP message that does not encode, not sent');
      return;
    }
    // raw IP unless this node has none, or the neighbour it goes to speaks only the UDP
    // encapsulation (it was heard on UDP: RFC 2205 appendix C, a UDP-only host)
    const sock = !this.raw || (this.udp && this.udpPeers.has(out.dst)) ? this.udp! : this.raw;
    sock.send({ bytes, ifname: out.ifname, src: out.src, dst: out.dst, ttl: out.ttl, routerAlert: out.routerAlert });
  }

  /** A neighbour heard over UDP: what goes to it goes over UDP too (bounded: the oldest forgotten). */
  private heardOnUdp(src: string): void {
    this.udpPeers.delete(src);
    this.udpPeers.add(src);
    if (this.udpPeers.size > MAX_UDP_PEERS) this.udpPeers.delete(this.udpPeers.values().next().value!);
  }

  counts(): NodeCounts {
    let sent = 0, errors = 0;
    for (const s of this.sockets) { const c = s.counts(); sent += c.sent; errors += c.sendErrors; }
    return { received: this.received, sent, send_errors: errors, unencodable: this.unencodable, undecodable: { ...this.undecodable }, integrity: { ...this.integrityDrops } };
  }

  /** Stops: no timer runs, nothing is sent; the sockets are closed. */
  async close(): Promise<void> {
    if (this.stopped) return;
    this.engine.stop();
    this.stopped = true;
    for (const t of this.timers) t.cancel();
    await Promise.all(this.sockets.map((s) => s.close().catch(() => undefined)));
  }
}
