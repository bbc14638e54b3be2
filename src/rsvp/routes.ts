/* The routing table and interfaces as the RSVP engine asks for them (engine/types.ts Routes,
 * RsvpInterface), read from iproute2's JSON: `ip -j route show table main`, `ip -j -6 route
 * show`, `ip -j addr show`. The longest-prefix match is done here, on a snapshot that refresh()
 * renews, so a lookup never waits on a program. */

import { addressBytes } from '../capture/pcap-write.js';
import { run } from '../exec.js';
import type { RouteTo, Routes, RsvpInterface } from './engine/types.js';

/** One route of `ip -j route` (the fields used). */
interface IpRoute { dst: string; gateway?: string; dev?: string; prefsrc?: string; metric?: number; type?: string; nexthops?: { gateway?: string; dev?: string }[] }
/** One interface of `ip -j addr` (the fields used). */
interface IpLink { ifindex: number; ifname: string; flags?: string[]; mtu?: number; addr_info?: { family: string; local: string; prefixlen: number; scope?: string }[] }

interface Entry { family: 4 | 6; net: bigint; len: number; metric: number; to: { ifname: string; gateway: string | null; src: string | null } | null }

function toBig(a: string): bigint {
  return addressBytes(a).reduce((n, b) => (n << 8n) | BigInt(b), 0n);
}

const familyOf = (a: string): 4 | 6 => (a.includes(':') ? 6 : 4);
const bits = (f: 4 | 6) => (f === 4 ? 32 : 128);

function mask(f: 4 | 6, len: number): bigint {
  const all = (1n << BigInt(bits(f))) - 1n;
  return all ^ ((1n << BigInt(bits(f) - len)) - 1n);
}

/** The routes of one `ip -j [-6] route show` document. Unreachable, blackhole and prohibit
 * routes are kept: a destination they match has no route. */
export function parseRoutes(json: string, family: 4 | 6): Entry[] {
  return (JSON.parse(json) as IpRoute[]).flatMap((r): Entry[] => {
    const [prefix, l] = r.dst === 'default' ? [family === 4 ? '0.0.0.0' : '::', '0'] : r.dst.split('/');
    if (!prefix || familyOf(prefix) !== family) return [];
    const len = l === undefined ? bits(family) : Number(l);
    const hop = r.nexthops?.[0];
    const dev = r.dev ?? hop?.dev;
    const unusable = (r.type !== undefined && r.type !== 'unicast') || !dev;
    return [{
      family, net: toBig(prefix) & mask(family, len), len, metric: r.metric ?? 0,
      to: unusable ? null : { ifname: dev!, gateway: r.gateway ?? hop?.gateway ?? null, src: r.prefsrc ?? null },
    }];
  });
}

/** The interfaces RSVP may run on (all but loopback), addresses in the order ip lists them,
 * global before link-local within a family, and the MTU (the ADSPEC's path MTU, RFC 2210). */
export function parseInterfaces(json: string): RsvpInterface[] {
  const rank = (s?: string) => (s === 'link' ? 1 : 0);
  return (JSON.parse(json) as IpLink[])
    .filter((l) => !l.flags?.includes('LOOPBACK'))
    .map((l) => ({
      name: l.ifname,
      lih: l.ifindex,
      addresses: [...(l.addr_info ?? [])].filter((a) => a.family === 'inet' || a.family === 'inet6')
        .sort((a, b) => rank(a.scope) - rank(b.scope)).map((a) => a.local),
      ...(l.mtu ? { mtu: l.mtu } : {}),
    }));
}

/** A snapshot of routes and interfaces, looked up by longest prefix (then lowest metric). */
export class RouteTable implements Routes {
  constructor(private entries: Entry[], private links: RsvpInterface[]) {}

  /** this node's interfaces, the lih each carries its ifindex */
  get interfaces(): RsvpInterface[] {
    return this.links;
  }

  lookup(destination: string): RouteTo | null {
    const f = familyOf(destination);
    const d = toBig(destination);
    let best: Entry | null = null;
    for (const e of this.entries) {
      if (e.family !== f || (d & mask(f, e.len)) !== e.net) continue;
      if (!best || e.len > best.len || (e.len === best.len && e.metric < best.metric)) best = e;
    }
    if (!best?.to) return null;
    const src = best.to.src ?? this.interfaces.find((i) => i.name === best.to!.ifname)?.addresses.find((a) => familyOf(a) === f);
    return src ? { ifname: best.to.ifname, gateway: best.to.gateway, src } : null;
  }

  protected replace(t: RouteTable): void {
    this.entries = t.entries;
    this.links = t.links;
  }
}

async function read(): Promise<RouteTable> {
  const ip = (...args: string[]) => run(['ip', '-j', ...args], { timeoutMs: 10_000, pkg: 'iproute2' }).then((r) => r.stdout);
  const [r4, r6, links] = await Promise.all([ip('route', 'show', 'table', 'main'), ip('-6', 'route', 'show'), ip('addr', 'show')]);
  return new RouteTable([...parseRoutes(r4, 4), ...parseRoutes(r6, 6)], parseInterfaces(links));
}

/** The system's table, renewed by refresh() (after a routing change, or on a timer). */
export class SystemRoutes extends RouteTable {
  async refresh(): Promise<void> {
    this.replace(await read());
  }
}

/** Routes and interfaces of the network namespace this process runs in. */
export async function systemRoutes(): Promise<SystemRoutes> {
  const s = new SystemRoutes([], []);
  await s.refresh();
  return s;
}
