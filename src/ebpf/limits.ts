/* Per-application limits (docs/apps.md): a rule's `limit: { egress: 2Mbit, ingress: 10Mbit }`
 * holds every socket the rule decides, together, to those rates.
 *
 * - Each limit (a rule's name, or `default`) has an id, kept while the policy has it (a reload
 *   that keeps the rule keeps the id, and the sockets already under it), and two HTB classes on
 *   the daemon's IFB device: 1:(0x1000 + id) for what its sockets send, 1:(0x2000 + id) for what
 *   they receive, each with rate = ceil = the limit. The IFB's HTB sends anything unclassified
 *   on unshaped (default 0), though nothing else is redirected to it.
 * - A socket is put under a limit by its tag (the socket's storage in the kernel): the eBPF
 *   programs write the id at its connect when the rule is theirs; for a socket the agent
 *   decided, the daemon writes it once the decision is made (the flow event), through a copy of
 *   the program's descriptor (pidfd_getfd). The packets it sent before that are not held.
 * - On every interface but loopback and IFB devices, two tc programs (classic cls_bpf with a
 *   mirred action, priority LIMIT_PRIO on clsact) send a limited socket's packets through its
 *   class on the IFB device, which hands them back where they were going: egress by the
 *   packet's socket, ingress by the socket the packet is for. Unlimited traffic is not
 *   redirected and pays one lookup. An interface that appears later gets them when the daemon's
 *   link watcher says so, or at the next rescan (refresh()).
 * - Nothing is left at stop: the filters are removed and the IFB device deleted. A daemon
 *   killed with SIGKILL leaves them (tc holds the programs); the next one that starts finds its
 *   IFB device and removes them before anything else. */

import type { Logger } from 'pino';
import { run } from '../exec.js';
import { QosError } from '../errors.js';
import type { FlowEvent } from '../daemon/flow-events.js';
import type { DecisionLimit } from '../policy/engine.js';
import { actionDecision } from '../policy/engine.js';
import type { PolicyDoc } from '../policy/schema.js';

/** The tc filter priority of the two programs on every interface's clsact hook. */
export const LIMIT_PRIO = 0xd5c;
export const MAX_LIMIT_ID = 0xfff;
/** where the limit id sits in struct app_tag (bpf/exe-mark.bpf.c) */
export const TAG_LIMIT_OFFSET = 24;

/** The limits a policy asks for: each rule's with `limit`, keyed by its name, and the default's. */
export function policyLimits(doc: PolicyDoc): DecisionLimit[] {
  const out: DecisionLimit[] = [];
  doc.rules.forEach((r, i) => { const l = r.action.limit ? actionDecision(r.action, r.name ?? `rule-${i + 1}`)?.limit : undefined; if (l) out.push(l); });
  const d = doc.default?.limit ? actionDecision(doc.default, 'default')?.limit : undefined;
  if (d) out.push(d);
  return out;
}

/** A limit's HTB class on the IFB device, as tc's handle text and as the 32-bit classid. */
export function limitClass(id: number, dir: 'egress' | 'ingress'): { text: string; id: number } {
  const minor = (dir === 'egress' ? 0x1000 : 0x2000) + id;
  return { text: `1:${minor.toString(16)}`, id: ((1 << 16) | minor) >>> 0 };
}

/** The IFB device's name: the kernel rules' table's, so daemons with other tables (a test's)
 * never touch another's. */
export function ifbName(table: string): string {
  if (table.length <= 11) return `${table}-lim`;
  let h = 0x811c9dc5; // FNV-1a: a long name's own suffix
  for (const c of Buffer.from(table)) h = Math.imul(h ^ c, 0x01000193) >>> 0;
  return `${table.slice(0, 7)}${h.toString(36).slice(0, 6)}-l`;
}

/** tc lines that take the IFB's classes from one set of limits to another (rates in bytes/s). */
export function classBatch(ifb: string, from: ReadonlyMap<number, DecisionLimit>, to: ReadonlyMap<number, DecisionLimit>): string[] {
  const lines: string[] = [];
  for (const [id, l] of to) for (const dir of ['egress', 'ingress'] as const) {
    const rate = l[dir];
    const cls = limitClass(id, dir).text;
    if (rate === undefined) { if (from.get(id)?.[dir] !== undefined) lines.push(`class del dev ${ifb} classid ${cls}`); continue; }
    if (from.get(id)?.[dir] === rate) continue;
    const bits = Math.round(rate * 8);
    // a queue of about 100 ms at the rate (at least 32 full frames): TCP finds the rate
    // without losing more than it must
    const quantum = Math.max(1514, Math.min(200_000, Math.round(rate / 10)));
    lines.push(`class replace dev ${ifb} parent 1: classid ${cls} htb rate ${bits}bit ceil ${bits}bit quantum ${quantum}`);
    lines.push(`qdisc replace dev ${ifb} parent ${cls} pfifo limit ${Math.max(32, Math.ceil(rate * 0.1 / 1514))}`);
  }
  for (const [id, l] of from) if (!to.has(id)) for (const dir of ['egress', 'ingress'] as const) if (l[dir] !== undefined) lines.push(`class del dev ${ifb} classid ${limitClass(id, dir).text}`);
  return lines;
}

/** An interface of this network namespace. */
export interface Link { ifindex: number; name: string; loopback: boolean; kind: string | null }

/** What limits ask of the kernel (tests give a fake). */
export interface LimitHost {
  links(): Promise<Link[]>;
  /** tc -batch of these lines */
  tc(lines: string[]): Promise<void>;
  ip(argv: string[]): Promise<void>;
  attach(ifindex: number, egress: boolean, ifb: number): void;
  detach(ifindex: number, egress: boolean): void;
  /** the limit id into the tag of process pid's socket fd; false if it is not a socket */
  tag(pid: number, fd: number, id: number): boolean;
}

export const systemLinks = async (): Promise<Link[]> => {
  const r = await run(['ip', '-d', '-j', 'link', 'show'], { pkg: 'iproute2', code: 'QOS_ERR_KERNEL' });
  const links = JSON.parse(r.stdout || '[]') as { ifindex: number; ifname: string; link_type?: string; linkinfo?: { info_kind?: string } }[];
  return links.map((l) => ({ ifindex: l.ifindex, name: l.ifname, loopback: l.link_type === 'loopback', kind: l.linkinfo?.info_kind ?? null }));
};

export class AppLimits {
  private readonly ids = new Map<string, number>();
  /** the limits the IFB's classes and the kernel map hold now, by id */
  private liveLimits = new Map<number, DecisionLimit>();
  private wanted = new Map<number, DecisionLimit>();
  /** interfaces with our two filters: ifindex -> name */
  private readonly on = new Map<number, string>();
  private ifbIndex = 0;
  private next = 0;
  private work: Promise<void> = Promise.resolve();
  problem: string | null = null;
  counts = { sockets_tagged: 0, sockets_not_tagged: 0 };

  constructor(private readonly o: { host: LimitHost; table: string; log: Logger; writeClasses: (live: ReadonlyMap<number, DecisionLimit>, gone: readonly number[]) => void }) {}

  get ifb(): string { return ifbName(this.o.table); }

  /** A limit's id, made now if the policy is new (called while the eBPF slots are written).
   * Ids are not reused soon: sockets still tagged with a removed limit's id must not fall
   * under the next limit made. */
  idOf(key: string): number {
    let id = this.ids.get(key);
    if (id !== undefined) return id;
    const used = new Set([...this.ids.values(), ...this.liveLimits.keys()]);
    for (let i = 0; i < MAX_LIMIT_ID; i++) {
      this.next = this.next % MAX_LIMIT_ID + 1;
      if (!used.has(this.next)) { this.ids.set(key, this.next); return this.next; }
    }
    throw new QosError('QOS_ERR_POLICY_INVALID', `more than ${MAX_LIMIT_ID} limits`);
  }

  /** What a previous daemon killed with SIGKILL left: its IFB device and our filters. */
  async cleanLeftovers(): Promise<void> {
    const links = await this.o.host.links();
    if (!links.some((l) => l.name === this.ifb)) return;
    for (const l of links) for (const egress of [false, true]) this.o.host.detach(l.ifindex, egress);
    await this.o.host.ip(['link', 'del', 'dev', this.ifb]);
    this.o.log.info({ ifb: this.ifb }, 'removed the limits a previous daemon left');
  }

  /** The policy's limits from now on: ids for new ones (at once), the IFB's classes, the map
   * and the interfaces' filters (in the background, one change at a time). */
  setPolicy(doc: PolicyDoc): void {
    const specs = policyLimits(doc);
    const wanted = new Map<number, DecisionLimit>();
    for (const s of specs) wanted.set(this.idOf(s.key), s);
    // ids of limits the policy no longer has are free again once the classes are gone
    for (const [k, id] of this.ids) if (!wanted.has(id)) this.ids.delete(k);
    this.wanted = wanted;
    this.enqueue(() => this.converge());
  }

  /** Interfaces looked at again (a new one gets the filters). */
  refresh(): void {
    if (this.liveLimits.size || this.wanted.size) this.enqueue(() => this.converge());
  }

  private enqueue(f: () => Promise<void>): void {
    this.work = this.work.then(f).catch((e: unknown) => {
      this.problem = (e as Error).message;
      this.o.log.error({ err: this.problem }, 'per-application limits could not be set up');
    });
  }

  /** Waits for the changes asked so far (tests, stop). */
  settled(): Promise<void> { return this.work; }

  private async converge(): Promise<void> {
    const h = this.o.host, want = this.wanted;
    if (!want.size) {
      if (!this.liveLimits.size && !this.on.size && !this.ifbIndex) return;
      for (const [ifindex] of this.on) for (const egress of [false, true]) h.detach(ifindex, egress);
      this.on.clear();
      this.o.writeClasses(new Map(), [...this.liveLimits.keys()]);
      this.liveLimits = new Map();
      await h.ip(['link', 'del', 'dev', this.ifb]);
      this.ifbIndex = 0;
      this.problem = null;
      this.o.log.info('per-application limits removed (the policy has none)');
      return;
    }
    let links = await h.links();
    let ifb = links.find((l) => l.name === this.ifb);
    if (!ifb) {
      await h.ip(['link', 'add', 'name', this.ifb, 'txqueuelen', '1000', 'type', 'ifb']);
      await h.ip(['link', 'set', 'dev', this.ifb, 'up']);
      await h.tc([`qdisc replace dev ${this.ifb} root handle 1: htb default 0`]);
      this.liveLimits = new Map();
      links = await h.links();
      ifb = links.find((l) => l.name === this.ifb);
      if (!ifb) throw new QosError('QOS_ERR_KERNEL', `the IFB device ${this.ifb} did not appear`);
    }
    this.ifbIndex = ifb.ifindex;
    const lines = classBatch(this.ifb, this.liveLimits, want);
    if (lines.length) await h.tc(lines);
    const gone = [...this.liveLimits.keys()].filter((id) => !want.has(id));
    this.o.writeClasses(want, gone);
    this.liveLimits = new Map(want);
    // every interface but loopback and IFB devices (ours among them) has the two filters
    const present = new Set<number>();
    for (const l of links) {
      if (l.loopback || l.kind === 'ifb') continue;
      present.add(l.ifindex);
      if (this.on.get(l.ifindex) === l.name) continue;
      try {
        for (const egress of [false, true]) h.attach(l.ifindex, egress, this.ifbIndex);
        this.on.set(l.ifindex, l.name);
      } catch (e) {
        this.o.log.warn({ dev: l.name, err: (e as Error).message }, 'limits: cannot put the filters on this interface');
      }
    }
    for (const ifindex of this.on.keys()) if (!present.has(ifindex)) this.on.delete(ifindex);
    this.problem = null;
  }

  /** The flow-event subscriber: a socket the agent's decision put under a limit gets its tag. */
  readonly onEvent = (e: FlowEvent): void => {
    if (e.kind !== 'decided' || !e.decision?.limit) return;
    const id = this.ids.get(e.decision.limit.key);
    if (id === undefined) { this.counts.sockets_not_tagged++; return; }
    try {
      if (this.o.host.tag(e.flow.pid, e.flow.fd, id)) this.counts.sockets_tagged++;
      else this.counts.sockets_not_tagged++;
    } catch (err) {
      // the process or its socket gone meanwhile
      this.counts.sockets_not_tagged++;
      this.o.log.debug({ pid: e.flow.pid, fd: e.flow.fd, err: (err as Error).message }, 'limits: socket not tagged');
    }
  };

  /** Whether a policy's limits need the flow events (the agent's decisions). */
  get wantsEvents(): boolean { return this.wanted.size > 0; }

  async stop(): Promise<void> {
    this.wanted = new Map();
    this.enqueue(() => this.converge());
    await this.work;
  }

  status(): Record<string, unknown> {
    const byId = new Map([...this.ids].map(([k, id]) => [id, k]));
    return {
      ifb: this.liveLimits.size ? this.ifb : null, problem: this.problem,
      limits: [...this.liveLimits].map(([id, l]) => ({ name: byId.get(id) ?? l.key, id, egress_bps: l.egress !== undefined ? l.egress * 8 : null, ingress_bps: l.ingress !== undefined ? l.ingress * 8 : null })),
      interfaces: [...this.on.values()].sort(), ...this.counts,
    };
  }

  /** A live limit's rates, by id. */
  live(id: number): DecisionLimit | undefined { return this.liveLimits.get(id); }

  /** The limit a socket tag's id stands for (qos explain). */
  nameOf(id: number): string | null {
    for (const [k, v] of this.ids) if (v === id) return k;
    return null;
  }
}
