/* RSVP's transports (RFC 2205 section 3.11.5): raw IP protocol 46 with Router Alert, or the
 * UDP encapsulation of appendix C (udp-encap.ts). Node has no raw sockets, and its dgram can
 * neither say which interface a datagram came in on nor send one out of a given interface, so
 * both go through native/rsvpio, spawned (exec.ts start) in the caller's network namespace and
 * spoken to in frames (frames.ts). The transport carries bytes; the codec is message.ts. */

import { QosError } from '../../errors.js';
import { start, type Child } from '../../exec.js';
import { RSVPIO_PROGRAM } from '../../paths.js';
import { encodeSend, FrameReader, type Datagram, type Frame } from './frames.js';
import { listenOn, udpDestination, type Role } from './udp-encap.js';

export interface Packet { bytes: Uint8Array; ifname: string; src: string; dst: string; ttl: number; routerAlert: boolean; via: 'raw' | 'udp' }
export interface OutPacket { bytes: Uint8Array; ifname: string | null; src: string; dst: string; ttl: number; routerAlert: boolean }
export interface RsvpSocket {
  /** which transport it is */
  readonly via: 'raw' | 'udp';
  /** errors: logged (a process warning) and counted, never thrown */
  send(p: OutPacket): void;
  onPacket(cb: (p: Packet) => void): void;
  counts(): { sent: number; received: number; sendErrors: number };
  close(): Promise<void>;
}

/** how long the helper may take to open its sockets */
const READY_MS = 10_000;
/** how long close() waits for the helper to go once its stdin is closed */
const CLOSE_MS = 5_000;

function warn(message: string): void {
  process.emitWarning(message, { code: 'QOS_RSVP_TRANSPORT' });
}

class HelperSocket implements RsvpSocket {
  private readonly reader = new FrameReader();
  private readonly listeners: ((p: Packet) => void)[] = [];
  private readonly tally = { sent: 0, received: 0, sendErrors: 0 };
  private ready!: () => void;
  readonly opened = new Promise<void>((resolve) => (this.ready = resolve));
  private closing = false;
  private pending: Uint8Array[] = [];

  constructor(private readonly child: Child, readonly via: 'raw' | 'udp', private readonly route: (p: OutPacket) => { dst: string; port: number }) {
    child.proc.stdout!.on('data', (d: Buffer) => {
      let frames: Frame[];
      try { frames = this.reader.push(d); } catch (e) {
        warn(`${(e as Error).message}: stopping the helper`);
        child.kill();
        return;
      }
      for (const f of frames) this.take(f);
    });
    void child.exited.then((e) => { if (!this.closing) warn(`rsvpio ended: ${child.failure(e).message}`); });
  }

  private take(f: Frame): void {
    if (f.type === 'ready') this.ready();
    else if (f.type === 'result') {
      if (f.errno === 0) this.tally.sent++;
      else { this.tally.sendErrors++; warn(`rsvp send: ${f.reason}`); }
    } else {
      this.tally.received++;
      const { bytes, ifname, src, dst, ttl, routerAlert } = f.packet;
      // appendix C: what came over UDP counts as having had Router Alert (engine/types.ts Inbound)
      const p: Packet = { bytes, ifname, src, dst, ttl, routerAlert: routerAlert || this.via === 'udp', via: this.via };
      for (const cb of this.listeners) cb(p);
    }
  }

  send(p: OutPacket): void {
    let frame: Uint8Array;
    try {
      const to = this.route(p);
      const family = to.dst.includes(':') ? 6 : 4;
      const d: Datagram = { family, routerAlert: p.routerAlert, ttl: p.ttl, port: to.port, ifname: p.ifname ?? '', src: p.src, dst: to.dst, bytes: p.bytes };
      frame = encodeSend(d);
    } catch (e) {
      this.tally.sendErrors++;
      warn(`rsvp send to ${p.dst}: ${(e as Error).message}`);
      return;
    }
    if (!this.child.running || this.closing) {
      this.tally.sendErrors++;
      warn(`rsvp send to ${p.dst}: the transport is ${this.closing ? 'closed' : 'down (rsvpio ended)'}`);
      return;
    }
    // the frames of one turn of the event loop (a timer's refreshes, the answers to a burst
    // received) go to the helper in one write: each write wakes it, and costs the kernel a
    // pipe transfer
    this.pending.push(frame);
    if (this.pending.length === 1) queueMicrotask(() => this.flush());
  }

  private flush(): void {
    const frames = this.pending;
    this.pending = [];
    if (!frames.length || !this.child.running) return;
    this.child.proc.stdin!.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
  }

  onPacket(cb: (p: Packet) => void): void {
    this.listeners.push(cb);
  }

  counts(): { sent: number; received: number; sendErrors: number } {
    return { ...this.tally };
  }

  async close(): Promise<void> {
    this.flush();
    this.closing = true;
    this.child.proc.stdin!.end(); // the helper answers what it was sent, then exits
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.child.exited, new Promise((r) => (timer = setTimeout(r, CLOSE_MS)))]).finally(() => clearTimeout(timer));
    if (this.child.running) await this.child.stop('SIGTERM', CLOSE_MS);
  }
}

/** Starts the helper with args; resolves once its sockets are open, or throws its error. */
async function open(args: string[], via: 'raw' | 'udp', route: (p: OutPacket) => { dst: string; port: number }): Promise<RsvpSocket> {
  const child = start([RSVPIO_PROGRAM, ...args], { stdio: ['pipe', 'pipe', 'pipe'], name: 'rsvpio', code: 'QOS_ERR_ENVIRONMENT' });
  const s = new HelperSocket(child, via, route);
  let timer: NodeJS.Timeout | undefined;
  const failed = Promise.race([
    child.exited.then((e) => child.failure(e)),
    new Promise<QosError>((r) => { timer = setTimeout(() => r(new QosError('QOS_ERR_ENVIRONMENT', `rsvpio did not open its sockets within ${READY_MS} ms`)), READY_MS); }),
  ]);
  const first = await Promise.race([s.opened.then(() => null), failed]).finally(() => clearTimeout(timer));
  if (first) {
    child.kill();
    throw first;
  }
  return s;
}

/** Raw IP protocol 46, both families unless told. intercept (routers): the packets with Router
 * Alert the kernel would forward come here instead (IP_ROUTER_ALERT; forwarding must be on).
 * Needs CAP_NET_RAW. */
export function openRaw(o: { intercept: boolean; families?: (4 | 6)[] }): Promise<RsvpSocket> {
  const fams = o.families ?? [4, 6];
  const args = ['raw', ...(o.intercept ? ['--intercept'] : []), ...fams.map((f) => `-${f}`)];
  return open(args, 'raw', (p) => ({ dst: p.dst, port: 0 }));
}

/** The UDP encapsulation (RFC 2205 appendix C, udp-encap.ts), IPv4: a router on port 1698 and
 * group 224.0.0.14, a host on 1699. Needs no privilege. */
export function openUdp(o: { role: Role }): Promise<RsvpSocket> {
  const l = listenOn(o.role);
  return open(['udp', '--port', String(l.port), ...(l.group ? ['--join', l.group] : [])], 'udp', (p) => udpDestination(o.role, p));
}
