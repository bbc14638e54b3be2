/* Flows for unmodified programs (docs/traffic-control.md, "For unmodified programs"): when the
 * policy decides a socket with a flow (`service:`, `template:`, `flowspec:`), the socket's
 * packets are put in a traffic-control flow by an exact filter on its 5-tuple, once that is
 * known; filter and flow go when the socket closes or the process exits.
 *
 * It follows the flow table's events (flow-events.ts), never the decision path: a program's
 * connect is answered first, and its 5-tuple is complete only after the real connect (the
 * local port) anyway. The local end is read from the process's own network namespace
 * (/proc/PID/fd/FD names the socket's inode, /proc/PID/net/{tcp,udp}{,6} its addresses), the
 * egress interface from the route to the remote end. Sockets of one process that one rule
 * puts on one interface share a flow (seed 002: the QoS of an application's traffic), which
 * goes with the last of them. */

import { readFileSync, readlinkSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import type { Logger } from 'pino';
import { run } from '../exec.js';
import type { Flow } from '../daemon/flows.js';
import type { FlowEvent } from '../daemon/flow-events.js';
import type { TrafficControl } from './control.js';
import type { TcRequest } from './request.js';

/** Where a socket is: what the filter needs (src '*': an unconnected socket bound to any address). */
export interface FiveTuple { family: 4 | 6; proto: 'tcp' | 'udp'; src: string; sport: number; dst: string; dport: number }

/** How attach learns what the kernel knows of a socket and of routes (tests may fake it). */
export interface SocketLookup {
  /** the socket's 5-tuple once connected (local port assigned), or null if not yet; an
   * unconnected socket's is the destination it sent to (`to`) from its local port */
  tuple(pid: number, fd: number, proto: 'tcp' | 'udp', to: { address: string; port: number }): FiveTuple | null;
  /** the interface packets to dst leave by (from src, or any local address: '*') */
  route(dst: string, src: string): Promise<string>;
}

/** Tries after a decision: the agent connects only once it has the answer. */
const RETRY_MS = [2, 5, 10, 20, 50, 100, 200, 400, 800, 1600];

/** A decided socket's 5-tuple, read again and again (for about 3 s) until the real connect (or
 * first sendto) has given it a local port: null if it never did, undefined if `wanted` stopped
 * holding meanwhile (the socket closed). For this module and rsvp/attach.ts. */
export async function tupleOnceConnected(lookup: SocketLookup, f: Pick<Flow, 'pid' | 'fd' | 'proto' | 'remote'>, wanted: () => boolean): Promise<FiveTuple | null | undefined> {
  for (const ms of RETRY_MS) {
    await new Promise((r) => setTimeout(r, ms));
    if (!wanted()) return undefined;
    const t = lookup.tuple(f.pid, f.fd, f.proto as 'tcp' | 'udp', f.remote!);
    if (t) return t;
  }
  return null;
}

interface Group { key: string; uid: number; flowId: number; sockets: Set<string> }
interface Attached { group: Group; filterId: number }

/** What one user's programs may hold (every local user may be hostile: one user's sockets
 * must not take the flows, filters or link rate others' policy gives them). */
export interface AttachLimits { flowsPerUser: number; socketsPerUser: number }
export const DEFAULT_ATTACH_LIMITS: AttachLimits = { flowsPerUser: 32, socketsPerUser: 256 };

export class TcAttach {
  private readonly attached = new Map<string, Attached>();
  private readonly pending = new Map<string, Flow>();
  private readonly groups = new Map<string, Group>();
  /** per uid: flows held, and sockets attached or on their way */
  private readonly users = new Map<number, { flows: number; sockets: number }>();
  /** how many sockets got a filter, how many could not, and how many a user's bound left out */
  attachedTotal = 0;
  failed = 0;
  overLimit = 0;

  constructor(private readonly tc: TrafficControl, private readonly lookup: SocketLookup = procLookup, private readonly log?: Logger, private readonly limits: AttachLimits = DEFAULT_ATTACH_LIMITS) {}

  private user(uid: number): { flows: number; sockets: number } {
    let u = this.users.get(uid);
    if (!u) this.users.set(uid, (u = { flows: 0, sockets: 0 }));
    return u;
  }

  /** The flow-event subscriber. */
  readonly onEvent = (e: FlowEvent): void => {
    const f = e.flow;
    const key = `${f.pid}/${f.fd}`;
    if (e.kind === 'closed') {
      this.pending.delete(key);
      const a = this.attached.get(key);
      if (a) { this.attached.delete(key); void this.detach(key, a); }
      return;
    }
    if (e.kind !== 'decided') return;
    const want = e.decision?.tc;
    // the rule's own mark, if it gives one, is the flow's (seed 003's DCLASS), not the service's
    if (!want || !f.remote || (f.proto !== 'tcp' && f.proto !== 'udp') || this.attached.has(key) || this.pending.get(key) === f) return;
    const u = this.user(f.uid);
    if (u.sockets >= this.limits.socketsPerUser) { this.overLimit++; return; }
    u.sockets++;
    this.pending.set(key, f);
    const d = e.decision!;
    const dscp = d.dscp ?? (d.tos !== undefined ? d.tos >> 2 : null);
    void this.attach(key, f, want, e.rule ?? '-', dscp).then((ok) => { if (!ok) this.release(f.uid, 'sockets'); });
  };

  private release(uid: number, what: 'sockets' | 'flows'): void {
    const u = this.users.get(uid);
    if (!u) return;
    u[what]--;
    if (!u.flows && !u.sockets) this.users.delete(uid);
  }

  /** Whether the socket got its filter (or is being detached: its count goes there). */
  private async attach(key: string, f: Flow, want: TcRequest, rule: string, dscp: number | null): Promise<boolean> {
    const tuple = await tupleOnceConnected(this.lookup, f, () => this.pending.get(key) === f);
    if (tuple === undefined) return false; // closed meanwhile
    try {
      if (!tuple) throw new Error('its local address never appeared (not connected, or gone)');
      const dev = await this.lookup.route(tuple.dst, tuple.src);
      if (this.pending.get(key) !== f) return false;
      const gkey = `${f.pid}/${rule}/${dev}`;
      let g = this.groups.get(gkey);
      if (!g) {
        const u = this.user(f.uid);
        if (u.flows >= this.limits.flowsPerUser) { this.pending.delete(key); this.overLimit++; return false; }
        u.flows++;
        let flow: { id: number };
        try {
          flow = await this.tc.addFlow({ dev, flowspec: want.spec, mode: want.mode, dscp, name: `${rule}`.slice(0, 64).replace(/[^\w.-]/g, '_'), proto: tuple.proto, ipv6: tuple.family === 6 }, false,
            { kind: 'policy', pid: f.pid, fd: f.fd, rule }) as { id: number };
        } catch (e) {
          this.release(f.uid, 'flows');
          throw e;
        }
        g = { key: gkey, uid: f.uid, flowId: flow.id, sockets: new Set() };
        this.groups.set(gkey, g);
      }
      g.sockets.add(key);
      const filter = await this.tc.addFilter({ flow: g.flowId, family: tuple.family, src: tuple.src, dst: tuple.dst, proto: tuple.proto, sport: tuple.sport, dport: tuple.dport }) as { id: number };
      const a = { group: g, filterId: filter.id };
      if (this.pending.get(key) !== f) { await this.detach(key, a); return true; }
      this.pending.delete(key);
      this.attached.set(key, a);
      this.attachedTotal++;
      this.log?.debug({ pid: f.pid, fd: f.fd, flow: g.flowId, filter: filter.id, dev, ...tuple }, 'socket attached to a traffic-control flow');
      return true;
    } catch (e) {
      if (this.pending.get(key) === f) this.pending.delete(key);
      this.failed++;
      this.log?.warn({ pid: f.pid, fd: f.fd, rule, err: (e as Error).message }, 'cannot put the socket in a traffic-control flow');
      // the socket leaves the group it joined without a filter; a group left empty goes
      for (const g of this.groups.values()) {
        if (!g.sockets.delete(key) || g.sockets.size) continue;
        this.groups.delete(g.key);
        this.release(g.uid, 'flows');
        await this.tc.deleteFlow(g.flowId).catch(() => undefined);
      }
      return false;
    }
  }

  private async detach(key: string, a: Attached): Promise<void> {
    this.release(a.group.uid, 'sockets');
    try {
      a.group.sockets.delete(key);
      await this.tc.deleteFilter(a.filterId).catch(() => undefined); // (gone with its flow, or the interface)
      if (a.group.sockets.size === 0 && this.groups.get(a.group.key) === a.group) {
        this.groups.delete(a.group.key);
        this.release(a.group.uid, 'flows');
        await this.tc.deleteFlow(a.group.flowId);
      }
    } catch (e) {
      this.log?.warn({ socket: key, err: (e as Error).message }, 'cannot remove a socket\'s traffic-control flow');
    }
  }
}

/** /proc/net's address form: IPv4 one little-endian word, IPv6 four. */
export function procAddress(hex: string): string {
  const words = hex.match(/.{8}/g)!.map((w) => Buffer.from(w, 'hex').reverse());
  const b = Buffer.concat(words);
  if (b.length === 4) return [...b].join('.');
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return [...b.subarray(12)].join('.'); // v4-mapped
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(i).toString(16));
  return g.join(':');
}

/** The line of /proc/PID/net/FILE whose inode is `inode`, as a 5-tuple with the local port set;
 * for a UDP socket not connected, with `to` (where its first sendto went) as the remote end. */
export function tupleFromProcNet(text: string, inode: string, proto: 'tcp' | 'udp', to?: { address: string; port: number }): FiveTuple | null {
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[9] !== inode) continue;
    const [la, lp] = f[1]!.split(':'), [ra, rp] = f[2]!.split(':');
    const sport = parseInt(lp!, 16);
    let dport = parseInt(rp!, 16), dst = procAddress(ra!);
    if (!dport && proto === 'udp' && to) { dport = to.port; dst = to.address.replace(/^::ffff:(?=\d+\.)/i, ''); }
    if (!sport || !dport) return null; // not bound or not connected yet
    let src = procAddress(la!);
    if (src === '0.0.0.0' || /^[0:]+$/.test(src)) src = '*';
    return { family: isIPv4(dst) ? 4 : 6, proto, src, sport, dst, dport };
  }
  return null;
}

export const procLookup: SocketLookup = {
  tuple(pid, fd, proto, to) {
    let link: string;
    try { link = readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { return null; }
    const m = /^socket:\[(\d+)\]$/.exec(link);
    if (!m) return null;
    for (const file of [proto, `${proto}6`]) {
      let text: string;
      try { text = readFileSync(`/proc/${pid}/net/${file}`, 'utf8'); } catch { continue; }
      const t = tupleFromProcNet(text, m[1]!, proto, to);
      if (t) return t;
    }
    return null;
  },
  async route(dst, src) {
    const r = await run(['ip', '-j', 'route', 'get', dst, ...(src === '*' ? [] : ['from', src])], { code: 'QOS_ERR_KERNEL', pkg: 'iproute2' });
    const dev = (JSON.parse(r.stdout) as Array<{ dev?: string }>)[0]?.dev;
    if (!dev) throw new Error(`no route to ${dst}`);
    return dev;
  },
};
