/* The daemon's traffic control (seed 003's TC API): keeps the interfaces, flows and filters,
 * checks every request against them, and applies the change through a runner (tc, nft, ip).
 *
 * Requests made while a change is being applied are gathered and applied together (one tc
 * batch, one nft transaction): a burst of flows costs a few commands, not a few per flow.
 * Each request is checked alone against the state the earlier ones leave; one that fails is
 * refused and changes nothing. If the kernel refuses a batch, the last applied state is
 * installed again whole and the batch's requests are retried one by one, so each gets its
 * own answer and nothing is left half-applied.
 *
 * What it installs carries its own mark (the HTB handle d5c:, the table inet qosd_tc): at
 * start it removes what a predecessor killed with SIGKILL left, at stop all it installed. */

import { readFileSync, rmSync } from 'node:fs';
import { writeFileAtomic } from '../atomic-file.js';
import type { Logger } from 'pino';
import { QosError } from '../errors.js';
import { serviceTypeNamed, SERVICE_TYPE_NAMES, type ServiceType } from '../flowspec/model.js';
import { parseRate } from '../units.js';
import { checkDev, checkMark, DEFAULT_NONCONFORMING, emptyState, flowMarks, flowProblems, isDevName, isExact, kernelBucket, kernelRate, policer, MAX_FILTER_ID, MAX_FILTERS, MAX_FLOW_ID, MAX_FLOWS, parseFilter, SERVICE_DEFAULTS, type FilterInput, type Mark, type TcFilter, type TcFlow, type TcInterface, type TcMode, type TcState } from './model.js';
import { filterKey, HANDLE_TEXT, planChange, planText, reservedRate, TABLE, type TcPlan } from './plan.js';
import { systemRunner } from './runner.js';
import { TcIndex } from './state-index.js';
import { flowSpecOf } from './request.js';

/** What control needs of the machine: the real one runs tc, nft and ip; tests may fake it. */
export interface TcRunner {
  apply(plan: TcPlan): Promise<void>;
  /** whether dev exists, is a VLAN device, its speed in bytes/s if the driver knows it, and
   * its root qdisc unless it is the kernel's default (handle 0:) */
  link(dev: string): Promise<LinkInfo>;
  /** of what a predecessor installed (its table, its interfaces), what is still there: root
   * qdiscs with our handle, the table, interfaces with our 802.1p tagger */
  leftovers(table: string, devs: readonly string[]): Promise<{ devs: string[]; table: boolean; tagged: string[] }>;
}

/** What the runner says of an interface: `index` the kernel's (when the runner knows it). */
export interface LinkInfo { exists: boolean; vlan: boolean; speed: number | null; root: string | null; index?: number }

/** A flow as a user asks for it (API body, CLI): the interface, a FLOWSPEC (fields, or a
 * template's with fields over it), a service type, a mode (default: the service's), marks. */
export interface FlowInput {
  dev?: unknown; template?: unknown; flowspec?: unknown; service?: unknown; mode?: unknown;
  dscp?: unknown; pcp?: unknown; name?: unknown; proto?: unknown; ipv6?: unknown;
}

/** An interface's settings as a user gives them: rate, conforming marks by service type,
 * the non-conforming mark. */
export interface InterfaceInput { rate?: unknown; marks?: unknown; nonconforming?: unknown; dot1p?: unknown }

/** A state being changed by a batch, and its index once a request has asked for it (built
 * once per batch: a request then costs the same with 10 or 10,000 flows). */
type Mutable = { devs: Map<string, TcInterface>; flows: Map<number, TcFlow>; filters: Map<number, TcFilter>; table?: string; ix?: TcIndex };
const clone = (s: TcState): Mutable => ({ devs: new Map(s.devs), flows: new Map(s.flows), filters: new Map(s.filters), table: s.table });
const indexOf = (s: Mutable): TcIndex => (s.ix ??= new TcIndex(s));

interface Pending { op: (s: Mutable) => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void }

export interface TcOptions {
  /** the nftables table (family inet; default qosd_tc) */
  table?: string;
  /** where the interfaces under control are written before the kernel is told, so that the
   * next daemon removes what this one leaves if it is killed (default: none kept) */
  stateFile?: string;
  /** where the interfaces are now (the daemon's link watcher, net/link-watch.ts): an
   * interface's index is taken from it when a request is applied, so that a device replaced
   * meanwhile is told from the one the request saw */
  links?: { byName(name: string): { index: number } | undefined };
}

export class TrafficControl {
  private state: TcState;
  private readonly table: string;
  /** the interfaces the state file names */
  private recorded = new Set<string>();
  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private nextSlot = 0;
  private nextFlow = 1;
  private nextFilter = 1;
  /** how many changes reached the kernel */
  applied = 0;

  constructor(private readonly runner: TcRunner = systemRunner, private readonly log?: Logger, private readonly o: TcOptions = {}) {
    this.table = o.table ?? TABLE;
    this.state = emptyState(this.table);
  }

  /** Removes what a predecessor left (a daemon killed with SIGKILL cannot clean up): its
   * table, and on the interfaces its state file names, its root qdisc and 802.1p tagger. */
  async start(): Promise<void> {
    const left = await this.runner.leftovers(this.table, this.readRecord());
    if (left.devs.length || left.table || left.tagged.length) {
      await this.runner.apply({ tc: left.devs.map((d) => `qdisc del dev ${d} root`), nft: left.table ? [`delete table inet ${this.table}`] : [], ip: [], dot1p: left.tagged.map((dev) => ({ op: 'detach' as const, dev })) });
      this.log?.info({ devs: left.devs, table: left.table, dot1p: left.tagged }, 'removed the traffic control a previous daemon left');
    }
    this.record([]);
  }

  /** Removes everything installed. */
  async stop(): Promise<void> {
    await this.flushing;
    const plan = planChange(this.state, emptyState(this.table));
    this.state = emptyState(this.table);
    await this.runner.apply(plan);
    this.record([]);
  }

  /** The kernel told to go from one state to the other; the interfaces it will touch are
   * written down first (the state file). */
  private async kernel(from: TcState, to: TcState): Promise<void> {
    const devs = [...from.devs.keys(), ...to.devs.keys()];
    if (devs.some((d) => !this.recorded.has(d))) this.record([...new Set([...this.recorded, ...devs])]);
    await this.runner.apply(planChange(from, to));
  }

  private readRecord(): string[] {
    if (!this.o.stateFile) return [];
    try {
      const v = JSON.parse(readFileSync(this.o.stateFile, 'utf8')) as { devs?: unknown };
      return Array.isArray(v.devs) ? v.devs.filter(isDevName) : [];
    } catch {
      return [];
    }
  }

  private record(devs: string[]): void {
    this.recorded = new Set(devs);
    if (!this.o.stateFile) return;
    if (devs.length) writeFileAtomic(this.o.stateFile, JSON.stringify({ table: this.table, devs }) + '\n', { mode: 0o600 });
    else rmSync(this.o.stateFile, { force: true });
  }

  get current(): TcState { return this.state; }

  /** The whole state as the kernel is given it from nothing (`qos tc plan`). */
  planAll(): string { return planText(planChange(emptyState(this.table), this.state)); }

  /** `qos status`'s tc counts, and the interfaces whose configuration waits (since, why). */
  status(): Record<string, unknown> {
    const absent = [...this.state.devs.values()].filter((i) => i.absent);
    const waiting = [...this.state.flows.values()].filter((f) => this.state.devs.get(f.dev)!.absent).length;
    return {
      interfaces: this.state.devs.size, flows: this.state.flows.size, filters: this.state.filters.size, changes_applied: this.applied,
      absent: absent.map((i) => ({ dev: i.dev, since: i.absent!.since, why: i.absent!.why })), flows_waiting: waiting,
    };
  }

  list(): { interfaces: unknown[]; flows: unknown[]; filters: unknown[] } {
    const counts = new Map<number, number>();
    for (const x of this.state.filters.values()) counts.set(x.flow, (counts.get(x.flow) ?? 0) + 1);
    return {
      interfaces: [...this.state.devs.values()].map((i) => interfaceJson(i, this.state)),
      flows: [...this.state.flows.values()].map((f) => flowJson(f, this.state, counts.get(f.id) ?? 0)),
      filters: [...this.state.filters.values()].map(filterJson),
    };
  }

  // ---- requests -------------------------------------------------------------------------

  /** Sets an interface's rate and marks (adding it if it is not under control yet). */
  async setInterface(devIn: unknown, input: InterfaceInput, dryRun = false): Promise<unknown> {
    const dev = checkDev(devIn);
    // a configuration waiting for its interface may be changed while the interface is away
    const link = this.state.devs.get(dev)?.absent ? await this.runner.link(dev) : await this.link(dev);
    const rate = input.rate === undefined ? undefined : rateOf(input.rate, 'rate');
    const marks = input.marks === undefined ? undefined : marksOf(input.marks);
    const nonconforming = input.nonconforming === undefined ? undefined : checkMark(input.nonconforming, 'nonconforming');
    if (input.dot1p !== undefined && typeof input.dot1p !== 'boolean') throw new QosError('QOS_ERR_USAGE', `dot1p is true or false, not ${JSON.stringify(input.dot1p)}`);
    const dot1p = input.dot1p as boolean | undefined;
    return this.submit(dryRun, (s) => {
      const old = s.devs.get(dev);
      let i: TcInterface = old
        ? { ...old, rate: rate ?? old.rate, marks: marks ?? old.marks, nonconforming: nonconforming ?? old.nonconforming, dot1p: dot1p ?? old.dot1p }
        : this.newInterface(dev, link, rate, marks, nonconforming, dot1p);
      // one waiting whose interface is there now is installed again, checked as a new one
      if (i.absent && link.exists) i = this.returned(i, link);
      checkCapacity(indexOf(s), i, 0);
      s.devs.set(dev, i);
      return interfaceJson(i, s);
    });
  }

  async addFlow(input: FlowInput, dryRun = false, owner: TcFlow['owner'] = { kind: 'admin' }): Promise<unknown> {
    const dev = checkDev(input.dev);
    const parsed = flowOf(input);
    const link = this.state.devs.has(dev) ? null : await this.link(dev);
    return this.submit(dryRun, (s) => {
      if (s.flows.size >= MAX_FLOWS) throw new QosError('QOS_ERR_CONFLICT', `at most ${MAX_FLOWS} flows`);
      const i = s.devs.get(dev) ?? this.newInterface(dev, link ?? { vlan: false, speed: null, root: null });
      const f: TcFlow = { id: 0, dev, owner, ...parsed };
      const ix = indexOf(s);
      checkCapacity(ix, i, kernelRate(f));
      f.id = this.freeId(s.flows, 'nextFlow', MAX_FLOW_ID, 'flow');
      s.devs.set(dev, i);
      s.flows.set(f.id, f);
      ix.addFlow(f);
      return flowJson(f, s, 0);
    });
  }

  /** Replaces a flow's FLOWSPEC, mode or marks (not its interface). */
  async modifyFlow(id: number, input: FlowInput, dryRun = false): Promise<unknown> {
    const old = this.state.flows.get(id);
    if (!old) throw new QosError('QOS_ERR_NOT_FOUND', `no flow ${id}`);
    if (input.dev !== undefined && input.dev !== old.dev) throw new QosError('QOS_ERR_USAGE', `flow ${id} is on ${old.dev}: a flow does not move; delete it and add one on ${String(input.dev)}`);
    const parsed = flowOf({ ...input, dev: old.dev }, old);
    return this.submit(dryRun, (s) => {
      const cur = s.flows.get(id);
      if (!cur) throw new QosError('QOS_ERR_NOT_FOUND', `no flow ${id}`);
      const f: TcFlow = { ...cur, ...parsed };
      const ix = indexOf(s);
      checkCapacity(ix, s.devs.get(f.dev)!, kernelRate(f) - kernelRate(cur));
      s.flows.set(id, f);
      ix.removeFlow(cur);
      ix.addFlow(f);
      return flowJson(f, s, ix.filtersOf(id).length);
    });
  }

  /** Deletes a flow and its filters. */
  deleteFlow(id: number, dryRun = false): Promise<unknown> {
    return this.submit(dryRun, (s) => {
      const f = s.flows.get(id);
      if (!f) throw new QosError('QOS_ERR_NOT_FOUND', `no flow ${id}`);
      const ix = indexOf(s);
      const filters = ix.filtersOf(id);
      for (const fid of filters) { ix.removeFilter(s.filters.get(fid)!); s.filters.delete(fid); }
      ix.removeFlow(f);
      s.flows.delete(id);
      return { deleted: id, filters: filters.length };
    });
  }

  addFilter(input: FilterInput, dryRun = false): Promise<unknown> {
    const probe = parseFilter(input, 0); // bad input fails here, before it waits for a turn
    return this.submit(dryRun, (s) => {
      if (s.filters.size >= MAX_FILTERS) throw new QosError('QOS_ERR_CONFLICT', `at most ${MAX_FILTERS} filters`);
      const flow = s.flows.get(probe.flow);
      if (!flow) throw new QosError('QOS_ERR_NOT_FOUND', `no flow ${probe.flow}: add the flow first (qos tc add-flow)`);
      const ix = indexOf(s);
      const g = ix.conflict(probe);
      if (g) {
        throw new QosError('QOS_ERR_CONFLICT', isExact(probe)
          ? `filter ${g.id} (flow ${g.flow}) already matches exactly ${filterKey(probe)} on ${flow.dev}`
          : `filter ${g.id} (flow ${g.flow}, ${filterKey(g)}) overlaps it on ${flow.dev}: filters with wildcards on one interface must not overlap (an exact filter may sit inside one and wins)`);
      }
      const f = { ...probe, id: this.freeId(s.filters, 'nextFilter', MAX_FILTER_ID, 'filter') };
      s.filters.set(f.id, f);
      ix.addFilter(f);
      return filterJson(f);
    });
  }

  deleteFilter(id: number, dryRun = false): Promise<unknown> {
    return this.submit(dryRun, (s) => {
      const f = s.filters.get(id);
      if (!f) throw new QosError('QOS_ERR_NOT_FOUND', `no filter ${id}`);
      indexOf(s).removeFilter(f);
      s.filters.delete(id);
      return { deleted: id };
    });
  }

  // ---- interfaces that come and go (tc/links.ts follows the link watcher and calls these) --

  /** dev's device (index, if known) went: its configuration, flows and filters stay and wait
   * for an interface of that name; only its nftables part leaves the kernel (the kernel took
   * the rest with the device). False if dev was not in the kernel under this index. */
  async interfaceGone(dev: string, index: number | undefined, why: string): Promise<boolean> {
    const ours = (i: TcInterface | undefined): i is TcInterface => i !== undefined && !i.absent && (index === undefined || i.ifindex === undefined || i.ifindex === index);
    // (most links that come and go are not under control: no turn is taken for them)
    if (!ours(this.state.devs.get(dev)) && !this.queue.length && !this.flushing) return false;
    return this.submit(false, (s) => {
      const i = s.devs.get(dev);
      if (!ours(i)) return false;
      s.devs.set(dev, { ...i, absent: { since: new Date().toISOString(), why } });
      return true;
    }) as Promise<boolean>;
  }

  /** An interface named dev is there (index): a configuration that waits for it (or that was
   * on another device of that name) is installed again whole, at once, after the check a new
   * interface gets: one with a root qdisc not ours is refused, and goes on waiting, saying
   * why. Null if there was nothing to do. */
  async interfaceBack(dev: string, index: number): Promise<{ done: 'restored' | 'refused'; why?: string } | null> {
    const wants = (i: TcInterface | undefined) => i !== undefined && (i.absent !== undefined || (i.ifindex !== undefined && i.ifindex !== index));
    if (!wants(this.state.devs.get(dev))) return null;
    const link = await this.runner.link(dev);
    // gone again, or another device has the name now: its own event tells
    if (!link.exists || (link.index !== undefined && link.index !== index)) return null;
    return this.submit(false, (s) => {
      const i = s.devs.get(dev);
      if (!wants(i) || (this.o.links && this.o.links.byName(dev)?.index !== index)) return null;
      if (link.root) {
        const why = `it has a root qdisc, ${link.root}, that is not this daemon's: remove it (tc qdisc del dev ${dev} root) and run qos tc set-interface ${dev}`;
        s.devs.set(dev, { ...i!, absent: { since: i!.absent?.since ?? new Date().toISOString(), why } });
        return { done: 'refused', why };
      }
      s.devs.set(dev, { ...this.returned(i!, link), ifindex: index });
      return { done: 'restored' };
    }) as Promise<{ done: 'restored' | 'refused'; why?: string } | null>;
  }

  /** The device `index` was renamed from → to: its configuration, flows and filters move to
   * the new name (the kernel kept its qdisc and classes; the lookups naming it are written
   * again). A configuration waiting for `to` is dropped, names being unique: its flow and
   * filter counts are returned. Null if no configuration was on that device. */
  async interfaceRenamed(index: number, from: string, to: string): Promise<{ dropped: { flows: number; filters: number } | null } | null> {
    const ours = (i: TcInterface | undefined): i is TcInterface => i !== undefined && !i.absent && (i.ifindex === undefined || i.ifindex === index);
    if (!ours(this.state.devs.get(from)) && !this.queue.length && !this.flushing) return null;
    return this.submit(false, (s) => {
      const i = s.devs.get(from);
      if (!ours(i)) return null;
      let dropped: { flows: number; filters: number } | null = null;
      if (s.devs.has(to)) {
        dropped = { flows: 0, filters: 0 };
        const ix = indexOf(s);
        for (const [id, f] of s.flows) {
          if (f.dev !== to) continue;
          for (const fid of ix.filtersOf(id)) { s.filters.delete(fid); dropped.filters++; }
          s.flows.delete(id);
          dropped.flows++;
        }
        s.devs.delete(to);
      }
      s.devs.delete(from);
      s.devs.set(to, { ...i, dev: to, ifindex: index });
      for (const [id, f] of s.flows) if (f.dev === from) s.flows.set(id, { ...f, dev: to });
      s.ix = undefined; // it counts by name
      return { dropped };
    }) as Promise<{ dropped: { flows: number; filters: number } | null } | null>;
  }

  /** dev (index) came up: the kernel keeps qdiscs through down and up, so ours should be
   * there; if it is not (removed by hand meanwhile), everything is installed again. */
  async interfaceUp(dev: string, index: number): Promise<'kept' | 'restored' | 'refused' | null> {
    const i = this.state.devs.get(dev);
    if (!i || i.absent || (i.ifindex !== undefined && i.ifindex !== index)) return null;
    const link = await this.runner.link(dev);
    if (!link.exists) return null;
    if (link.root === `htb ${HANDLE_TEXT}`) return 'kept';
    await this.interfaceGone(dev, index, link.root ? `its root qdisc was replaced by ${link.root}` : 'its root qdisc was removed');
    return (await this.interfaceBack(dev, index))?.done ?? null;
  }

  // ---- applying -------------------------------------------------------------------------

  private async link(dev: string): Promise<LinkInfo> {
    const l = await this.runner.link(dev);
    if (!l.exists) throw new QosError('QOS_ERR_NOT_FOUND', `no interface ${dev} here`);
    return l;
  }

  private newInterface(dev: string, link: Omit<LinkInfo, 'exists'>, rate?: number, marks?: TcInterface['marks'], nonconforming?: Mark, dot1p?: boolean): TcInterface {
    checkRoot(dev, link);
    const r = rate ?? link.speed;
    if (r === null) throw new QosError('QOS_ERR_USAGE', `${dev} does not say its speed: give it a rate first (qos tc set-interface ${dev} --rate 100Mbit)`);
    const ifindex = this.ifindexOf(dev, link);
    return { dev, rate: r, marks: marks ?? {}, nonconforming: nonconforming ?? DEFAULT_NONCONFORMING, slot: this.nextSlot++, vlan: link.vlan, dot1p: dot1p ?? false, ...(ifindex !== undefined ? { ifindex } : {}) };
  }

  /** A waiting configuration on the interface that is there again: checked as a new one (a
   * root qdisc not ours is refused), under a new slot, so that all of it is installed. */
  private returned(i: TcInterface, link: Omit<LinkInfo, 'exists'>): TcInterface {
    checkRoot(i.dev, link);
    const { absent: _, ifindex: __, ...rest } = i;
    const ifindex = this.ifindexOf(i.dev, link);
    return { ...rest, slot: this.nextSlot++, vlan: link.vlan, ...(ifindex !== undefined ? { ifindex } : {}) };
  }

  /** dev's index as the link watcher has it now (it may be ahead of what `link` saw), or as the runner said. */
  private ifindexOf(dev: string, link: Omit<LinkInfo, 'exists'>): number | undefined {
    return this.o.links?.byName(dev)?.index ?? link.index;
  }

  private freeId(m: ReadonlyMap<number, unknown>, counter: 'nextFlow' | 'nextFilter', max: number, what: string): number {
    for (let n = 0; n < max; n++) {
      const id = counter === 'nextFlow' ? this.nextFlow : this.nextFilter;
      if (counter === 'nextFlow') this.nextFlow = id >= max ? 1 : id + 1;
      else this.nextFilter = id >= max ? 1 : id + 1;
      if (!m.has(id)) return id;
    }
    throw new QosError('QOS_ERR_CONFLICT', `no ${what} number left`);
  }

  /** A request: checked alone against the state the queued ones leave, then applied with
   * them (or, dry, only planned: the plan's text is the answer). */
  private submit(dryRun: boolean, op: (s: Mutable) => unknown): Promise<unknown> {
    if (dryRun) {
      const s = clone(this.state);
      const result = op(s);
      return Promise.resolve({ dry_run: true, result, plan: planText(planChange(this.state, s)) });
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ op, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  private async flush(): Promise<void> {
    // the requests of this turn of the event loop go together
    await new Promise((r) => setImmediate(r));
    try {
      while (this.queue.length) {
        const batch = this.queue;
        this.queue = [];
        await this.applyBatch(batch, true);
      }
    } finally {
      // in the same turn as the last look at the queue: a request cannot slip between them
      this.flushing = null;
    }
  }

  private async applyBatch(batch: Pending[], retry: boolean): Promise<void> {
    const base = this.state;
    const work = clone(base);
    const done: Array<{ p: Pending; value: unknown }> = [];
    for (const p of batch) {
      try {
        // an op checks everything before it changes anything: a refused one leaves work as it was
        done.push({ p, value: p.op(work) });
      } catch (e) {
        p.reject(e);
      }
    }
    if (!done.length) return;
    try {
      await this.kernel(base, work);
      this.state = work;
      this.applied++;
      for (const d of done) d.p.resolve(d.value);
    } catch (e) {
      this.log?.error({ err: (e as Error).message, requests: done.length }, 'the kernel refused a traffic-control change; reinstalling the last state');
      await this.reinstall(base);
      if (retry && done.length > 1) for (const d of done) await this.applyBatch([d.p], false);
      else for (const d of done) d.p.reject(e);
    }
  }

  /** Installs `s` from nothing: what a refused change may have left half-done goes. */
  private async reinstall(s: TcState): Promise<void> {
    try {
      await this.runner.apply(planChange(s, emptyState(this.table)));
    } catch { /* parts of it were not there: the point is that nothing is left */ }
    await this.start();
    this.state = emptyState(this.table);
    // an interface that vanished meanwhile waits for its return, with its flows and filters
    const live = clone(s);
    for (const [dev, i] of s.devs) {
      if (i.absent || (await this.runner.link(dev)).exists) continue;
      live.devs.set(dev, { ...i, absent: { since: new Date().toISOString(), why: 'gone' } });
      this.log?.warn({ dev }, 'interface gone: its traffic control waits for it to come back');
    }
    try {
      await this.kernel(emptyState(this.table), live);
      this.state = live;
    } catch (e) {
      this.log?.error({ err: (e as Error).message }, 'cannot reinstall traffic control; it is off until the next change');
    }
  }
}

function rateOf(v: unknown, what: string): number {
  const r = typeof v === 'number' ? v : typeof v === 'string' ? parseRate(v) : NaN;
  if (!(r >= 1000 && r <= 100e9)) throw new QosError('QOS_ERR_USAGE', `${what} must be 8kbit..800Gbit (bytes/s as a number, or text like 100Mbit), not ${JSON.stringify(v)}`);
  return Math.round(r);
}

function marksOf(v: unknown): Partial<Record<ServiceType, Mark>> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new QosError('QOS_ERR_USAGE', 'marks is an object of service types, each { dscp, pcp }');
  const out: Partial<Record<ServiceType, Mark>> = {};
  for (const [k, m] of Object.entries(v)) {
    const t = serviceTypeNamed(k);
    if (!t) throw new QosError('QOS_ERR_USAGE', `marks: no service type "${k}"; the service types are ${SERVICE_TYPE_NAMES.join(', ')}`);
    out[t] = checkMark(m, `marks.${t}`);
  }
  return out;
}

/** The flow's own fields from a request, over `old`'s for a modification. */
function flowOf(input: FlowInput, old?: TcFlow): Pick<TcFlow, 'spec' | 'mode' | 'framing' | 'dscp' | 'pcp' | 'name'> {
  const spec = flowSpecOf(input, old?.spec);
  const mode = (input.mode ?? (input.service !== undefined || !old ? SERVICE_DEFAULTS[spec.ServiceType].mode : old.mode)) as TcMode;
  const num = (v: unknown, prev: number | null): number | null => (v === undefined ? prev : v === null ? null : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : (v as number));
  const proto = (input.proto ?? old?.framing.proto ?? 'udp') as 'udp' | 'tcp';
  if (proto !== 'udp' && proto !== 'tcp') throw new QosError('QOS_ERR_USAGE', `proto (the headers counted per packet) is udp or tcp, not ${JSON.stringify(proto)}`);
  const name = input.name === undefined ? old?.name ?? null : input.name;
  if (name !== null && (typeof name !== 'string' || !/^[\w.-]{1,64}$/.test(name))) throw new QosError('QOS_ERR_USAGE', `name is 1-64 letters, digits, '_', '.' or '-', not ${JSON.stringify(name)}`);
  const f = { spec, mode, framing: { proto, ipv6: input.ipv6 === true || (input.ipv6 === undefined && (old?.framing.ipv6 ?? false)) }, dscp: num(input.dscp, old?.dscp ?? null), pcp: num(input.pcp, old?.pcp ?? null), name };
  const problems = flowProblems(f);
  if (problems.length) throw new QosError('QOS_ERR_USAGE', `invalid flow: ${problems.join('; ')}`);
  return f;
}

/** An interface with a root qdisc that is not the kernel's default is another's: refused. */
function checkRoot(dev: string, link: Pick<LinkInfo, 'root'>): void {
  if (link.root) throw new QosError('QOS_ERR_CONFLICT', `${dev} already has a root qdisc, ${link.root}, that is not this daemon's: remove it first (tc qdisc del dev ${dev} root)`);
}

/** Flows on an interface must leave its best-effort and demoted classes their share. */
function checkCapacity(ix: TcIndex, i: TcInterface, adding: number): void {
  const sum = ix.reserved(i.dev) + adding;
  const room = i.rate - 2 * reservedRate(i);
  if (sum > room) throw new QosError('QOS_ERR_CONFLICT', `${i.dev} cannot hold it: its flows would reserve ${Math.round(sum * 8)} bit/s of ${Math.round(room * 8)} (the link's ${Math.round(i.rate * 8)} less 2% for best effort and demoted packets)`);
}

function interfaceJson(i: TcInterface, s: TcState): Record<string, unknown> {
  let flows = 0, reserved = 0;
  for (const f of s.flows.values()) if (f.dev === i.dev) { flows++; reserved += kernelRate(f); }
  const marks = Object.fromEntries(SERVICE_TYPE_NAMES.map((t) => [t, i.marks[t] ?? SERVICE_DEFAULTS[t].mark]));
  // absent: the interface is not there; its configuration and flows wait for it (since, why)
  return { dev: i.dev, present: !i.absent, absent: i.absent ?? null, ifindex: i.ifindex ?? null, rate: i.rate, rate_bit: i.rate * 8, reserved, flows, vlan: i.vlan, dot1p: i.dot1p || i.vlan, marks, nonconforming: i.nonconforming };
}

/** filters: how many the flow has (the caller counts them: a scan here would cost every request all the filters) */
function flowJson(f: TcFlow, s: TcState, filters: number): Record<string, unknown> {
  const i = s.devs.get(f.dev)!;
  const { conforming, nonconforming } = flowMarks(f, i);
  return {
    // waiting: its interface is absent; it is installed again with it
    id: f.id, dev: f.dev, waiting: i.absent !== undefined, name: f.name, mode: f.mode, service: f.spec.ServiceType, flowspec: f.spec, rate: kernelRate(f), bucket: kernelBucket(f), policer: policer(f),
    conforming, nonconforming, filters, owner: f.owner,
  };
}

function filterJson(f: TcFilter): Record<string, unknown> {
  return { id: f.id, flow: f.flow, family: f.family, ...f.text, exact: isExact(f) };
}
