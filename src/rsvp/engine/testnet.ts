/* A network in one process for the engine's tests: nodes (hosts and routers, each an
 * RsvpEngine on one ManualClock) on links, a static route function per node, and delivery of
 * what a node sends: with Router Alert to the next node on the route toward `dst` (on link:
 * every node there owning dst, so a multicast group reaches each member), without it straight
 * to the node owning dst. Every message is encoded and decoded on the way, so what the engine
 * sends must be what the strict encoder takes (RFC 2205 section 3.1 object order). Fakes of
 * traffic control record their calls. */

import { ManualClock } from '../../clock.js';
import { decode, encode } from '../message.js';
import { RsvpEngine } from './engine.js';
import type { Admission, EngineOptions, Outbound, Reservation, RouteTo, RsvpEvent, TrafficInstaller } from './types.js';

export class FakeTraffic implements TrafficInstaller {
  readonly calls: ({ op: 'update'; r: Reservation } | { op: 'remove'; key: string })[] = [];
  /** set: update rejects with it */
  failWith: string | null = null;
  get updates(): Reservation[] { return this.calls.flatMap((c) => (c.op === 'update' ? [c.r] : [])); }
  get removes(): string[] { return this.calls.flatMap((c) => (c.op === 'remove' ? [c.key] : [])); }
  update(r: Reservation): Promise<void> {
    this.calls.push({ op: 'update', r });
    return this.failWith ? Promise.reject(new Error(this.failWith)) : Promise.resolve();
  }
  remove(key: string): Promise<void> {
    this.calls.push({ op: 'remove', key });
    return Promise.resolve();
  }
}

export interface NodeSpec {
  name: string;
  role: 'host' | 'router';
  interfaces: { name: string; addresses: string[]; lih: number; link: string; rate?: number; mtu?: number; gs?: { c: number; d: number } }[];
  route: (dst: string) => RouteTo | null;
  admission?: Admission;
  traffic?: TrafficInstaller | null;
  refreshMs?: number;
}

export interface TestNode {
  spec: NodeSpec;
  engine: RsvpEngine;
  traffic: FakeTraffic;
  events: RsvpEvent[];
  /** what it sent, in order, with the clock time */
  sent: { at: number; o: Outbound }[];
  dead: boolean;
}

export class TestNet {
  readonly clock = new ManualClock(0);
  readonly nodes = new Map<string, TestNode>();
  private readonly queue: { from: TestNode; o: Outbound }[] = [];
  private busy = false;
  /** a seeded generator, so runs repeat */
  private seed = 12345;
  readonly random = () => { this.seed = (this.seed * 1103515245 + 12345) % 2 ** 31; return this.seed / 2 ** 31; };

  /** links: rates, MTUs and GS error terms of interfaces by name, added to every node's */
  constructor(private readonly links: Record<string, { rate?: number; mtu?: number; gs?: { c: number; d: number } }> = {}) {}

  add(spec: NodeSpec, extra: Partial<EngineOptions> = {}): TestNode {
    const traffic = new FakeTraffic();
    const node: TestNode = { spec, traffic, events: [], sent: [], dead: false, engine: null as unknown as RsvpEngine };
    node.engine = new RsvpEngine({
      role: spec.role, clock: this.clock, random: this.random, refreshMs: spec.refreshMs ?? 30_000,
      interfaces: spec.interfaces.map(({ link: _, ...i }) => ({ ...i, ...this.links[i.name] })),
      routes: { lookup: spec.route }, send: (o) => this.send(node, o),
      ...(spec.traffic === null ? {} : { traffic: spec.traffic ?? traffic }),
      ...(spec.admission ? { admission: spec.admission } : {}),
      onEvent: (e) => node.events.push(e),
      ...extra,
    });
    this.nodes.set(spec.name, node);
    return node;
  }

  node(name: string): TestNode { return this.nodes.get(name)!; }

  /** The node stops as if it crashed: no timers, nothing sent or received. */
  kill(name: string): void {
    const n = this.node(name);
    n.dead = true; n.engine.stop();
  }

  private send(from: TestNode, o: Outbound): void {
    if (from.dead) return;
    from.sent.push({ at: this.clock.now(), o });
    this.queue.push({ from, o });
    if (this.busy) return; // delivered in order by the loop below, not recursively
    this.busy = true;
    try {
      for (let m = this.queue.shift(); m; m = this.queue.shift()) this.deliver(m.from, m.o);
    } finally { this.busy = false; }
  }

  private deliver(from: TestNode, o: Outbound): void {
    const msg = decode(encode(o.msg)); // the wire: what does not encode fails the test here
    for (const { node, ifname } of this.receivers(from, o)) {
      if (!node.dead) node.engine.receive({ msg, ifname, src: o.src, dst: o.dst, ttl: o.ttl, routerAlert: o.routerAlert });
    }
  }

  private receivers(from: TestNode, o: Outbound): { node: TestNode; ifname: string }[] {
    const owning = (addr: string, link?: string) => [...this.nodes.values()].flatMap((node) => node.spec.interfaces
      .filter((i) => i.addresses.includes(addr) && (!link || i.link === link)).map((i) => ({ node, ifname: i.name })));
    if (!o.routerAlert) return owning(o.dst).slice(0, 1);
    const r = from.spec.route(o.dst);
    const out = from.spec.interfaces.find((i) => i.name === (o.ifname ?? r?.ifname));
    if (!r || !out) return [];
    return owning(r.gateway ?? o.dst, out.link).filter((x) => x.node !== from);
  }
}

/** The chain the tests run on: sender host S - router R1 - router R2 - a LAN with receiver
 * hosts D and E, which both joined the multicast group 224.1.1.1. */
export function chain(opts: { r1?: Partial<NodeSpec>; r2?: Partial<NodeSpec>; refreshMs?: number; links?: Record<string, { rate?: number; mtu?: number; gs?: { c: number; d: number } }> } = {}): TestNet {
  const net = new TestNet(opts.links);
  const R = opts.refreshMs ?? 30_000;
  const via = (ifname: string, gateway: string | null, src: string): RouteTo => ({ ifname, gateway, src });
  const lan = (d: string) => d.startsWith('10.0.3.') || d.startsWith('224.');
  net.add({ name: 'S', role: 'host', refreshMs: R, interfaces: [{ name: 's0', addresses: ['10.0.1.2'], lih: 1, link: 'A' }], route: () => via('s0', '10.0.1.1', '10.0.1.2') });
  net.add({
    name: 'R1', role: 'router', refreshMs: R, ...opts.r1,
    interfaces: [{ name: 'r1a', addresses: ['10.0.1.1'], lih: 11, link: 'A' }, { name: 'r1b', addresses: ['10.0.2.1'], lih: 12, link: 'B' }],
    route: (d) => (d.startsWith('10.0.1.') ? via('r1a', null, '10.0.1.1') : via('r1b', d.startsWith('10.0.2.') ? null : '10.0.2.2', '10.0.2.1')),
  });
  net.add({
    name: 'R2', role: 'router', refreshMs: R, ...opts.r2,
    interfaces: [{ name: 'r2a', addresses: ['10.0.2.2'], lih: 21, link: 'B' }, { name: 'r2b', addresses: ['10.0.3.1'], lih: 22, link: 'C' }],
    route: (d) => (lan(d) ? via('r2b', null, '10.0.3.1') : via('r2a', d.startsWith('10.0.2.') ? null : '10.0.2.1', '10.0.2.2')),
  });
  for (const [name, addr, lih] of [['D', '10.0.3.2', 31], ['E', '10.0.3.3', 41]] as const) {
    net.add({ name, role: 'host', refreshMs: R, interfaces: [{ name: `${name.toLowerCase()}0`, addresses: [addr, '224.1.1.1'], lih, link: 'C' }], route: () => via(`${name.toLowerCase()}0`, '10.0.3.1', addr) });
  }
  return net;
}

/** Lets the promises of traffic control settle. */
export const settle = (): Promise<void> => new Promise((r) => setImmediate(r));
