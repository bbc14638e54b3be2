/* The daemon's `ebpf` component (docs/ebpf.md): bpf/exe-mark.bpf.c loaded through qosbpf.node
 * and attached to a cgroup v2 directory (the hierarchy's root unless told: every process of
 * the host), its maps filled from the policy's rules the programs can check (rules.ts), the
 * files their exe patterns name resolved to device and inode (resolve.ts).
 *
 * - A policy (at start, at each reload, and when a rescan finds other files) is written as a
 *   new generation: every entry under the next generation number, then the live generation
 *   (one store the programs read once per call), then the entries of the generation before
 *   the last deleted (the last stays until the next switch, for a call that read it just
 *   before). No call sees half a policy.
 * - The agent's processes: when an agent connects, its pid and start time go into the agent
 *   map (the programs leave such a process's marks to the agent); when its last connection
 *   closes and the process is gone, they leave.
 * - The programs record each socket they decided in a map (by cookie) until its release:
 *   `GET /v1/flows` reads it when asked and shows each with path "ebpf". The daemon does
 *   nothing per connect.
 * - Nothing is pinned: the programs and maps live while the daemon holds their descriptors.
 *   At stop they are closed; a daemon killed with SIGKILL leaves nothing for the next one. */

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import type { Clock, Timer } from '../clock.js';
import type { Component } from '../component.js';
import { QosError } from '../errors.js';
import { systemNames, type Names } from '../kernel/rules.js';
import { decisionClass } from '../daemon/flows.js';
import { NameTable, startTime } from '../daemon/identity.js';
import type { Decision } from '../policy/engine.js';
import type { PolicyDoc } from '../policy/schema.js';
import { EXE_MARK_OBJECT, NATIVE_BPF } from '../paths.js';
import { agentValue, decodeSockets, encodeEntry, encodeKey, ENTRY_SIZE, KEY_SIZE, perCpuSum, R_APP_TOS, R_PRIO, R_TOS, u32le } from './encode.js';
import { resolvePatterns, type ResolvedFile } from './resolve.js';
import { entrySlots, policyRuleInEbpf, type EbpfRule } from './rules.js';
import { AppStats, decodeExeNames, decodeStats, HostNaming, possibleCpus, registerAppMetrics, type Dimension } from './apps.js';
import { AppLimits, LIMIT_PRIO, limitClass, systemLinks, TAG_LIMIT_OFFSET, type LimitHost } from './limits.js';
import { run } from '../exec.js';
import type { DecisionLimit } from '../policy/engine.js';
import type { Registry } from 'prom-client';

export type EbpfMode = 'auto' | 'on' | 'off';

/** The programs that count each program's packets (docs/apps.md): not attached with --stats off. */
export const COUNTING_PROGRAMS = ['qosd_sock_create', 'qosd_count_egress', 'qosd_count_ingress'];

/** What the component asks of qosbpf.node (native/qosbpf.c); tests give a fake. */
export interface Native {
  open(object: string, cgroup: string, skip?: string): number;
  describe(h: number): { programs: { name: string; section: string; id?: number }[]; maps: { name: string; fd: number; id?: number; key_size: number; value_size: number; max_entries: number }[]; links: number[] };
  update(fd: number, keys: Buffer, values: Buffer, flags?: number): void;
  delete(fd: number, keys: Buffer): void;
  keys(fd: number): Buffer;
  lookup(fd: number, key: Buffer): Buffer | null;
  dump(fd: number): Buffer;
  close(h: number): void;
  tcAttach(h: number, program: string, ifindex: number, egress: boolean, ifb: number, prio: number): void;
  tcDetach(ifindex: number, egress: boolean, prio: number): void;
  tagSocket(map: number, pid: number, fd: number, offset: number, bytes: Buffer): boolean;
  socketStorage(map: number, pid: number, fd: number): Buffer | null;
}

let nativeBpf: Native | null = null;
/** qosbpf.node, loaded on first use (a daemon with --ebpf off never needs libbpf). */
export function loadEbpf(): Native {
  return (nativeBpf ??= createRequire(import.meta.url)(NATIVE_BPF) as Native);
}

/** The mount point of the cgroup v2 hierarchy (the unified one of a hybrid), or null. */
export function cgroup2Root(mountinfo = '/proc/self/mountinfo'): string | null {
  let text: string;
  try { text = readFileSync(mountinfo, 'utf8'); } catch { return null; }
  for (const line of text.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (post?.split(' ')[0] === 'cgroup2') return pre!.split(' ')[4]!.replace(/\\040/g, ' ');
  }
  return null;
}

/** A socket the programs decided, as `GET /v1/flows` shows it. */
export interface EbpfFlow {
  path: 'ebpf';
  cookie: string;
  pid: number;
  uid: number;
  user: string;
  exe: string;
  family: 'inet' | 'inet6';
  type: 'stream' | 'dgram' | null;
  proto: 'tcp' | 'udp' | null;
  remote: { address: string; port: number };
  /** sendto: the first destination (an unconnected socket's later ones are not recorded) */
  event: 'connect' | 'sendto';
  decision: Decision | null;
  class: string;
  rule: string;
  /** the application's own TOS was kept (a rule without override) */
  app_tos_kept: boolean;
}

export interface EbpfOptions {
  mode: EbpfMode;
  /** the cgroup v2 directory to attach to (default: the hierarchy's root) */
  cgroup?: string;
  log: Logger;
  clock: Clock;
  /** how often the exe patterns are resolved again (default 10 s) */
  rescanMs?: number;
  object?: string;
  names?: () => Names;
  /** the loader (default: qosbpf.node) */
  native?: Native;
  /** the files exe patterns name (default: resolve.ts) */
  resolve?: typeof resolvePatterns;
  /** the kernel rules' table: the limits' IFB device is named after it (limits.ts) */
  table?: string;
  /** Prometheus: the per-application counters go there (apps.ts) */
  registry?: Registry;
  /** whether the programs count each program's packets (default true): off, the counting
   * programs are loaded but not attached (limits still work) */
  stats?: boolean;
  /** programs (and users, units) with a label of their own in Prometheus (default 20) */
  statsLabels?: number;
  /** how often the kernel's counters are folded (default 5 s) */
  statsMs?: number;
  /** what limits ask of the host (default: this one's, through qosbpf.node) */
  limitHost?: LimitHost;
}

export class EbpfMarking implements Component {
  readonly name = 'ebpf';
  private h: number | null = null;
  private fds: Record<string, number> = {};
  private programs: { name: string; section: string; id?: number }[] = [];
  private links: number[] = [];
  private cgroup: string | null = null;
  private problem: string | null = null;
  private gen = 0;
  /** the live generation's keys and the one before's (deleted once the next is live: a call
   * that read the previous generation just before a switch still finds its entries) */
  private liveKeys = Buffer.alloc(0);
  private oldKeys = Buffer.alloc(0);
  /** what the live generation was made of: a rescan that finds the same writes nothing */
  private liveFiles = '';
  private liveValues = Buffer.alloc(0);
  private doc: PolicyDoc | null = null;
  private rules: EbpfRule[] = [];
  private ruleNames: string[] = [];
  private files = new Map<string, ResolvedFile>();
  private fileNotes: string[] = [];
  private cut: { file: string; rules: string[] }[] = [];
  /** the processes in the agent map, with their start times (swept when gone) */
  private readonly agents = new Map<number, number>();
  private timers: Timer[] = [];
  /** uid to user name, read again when /etc/passwd changes */
  private readonly users = new NameTable('/etc/passwd');
  private counts = { generations: 0, agent_processes: 0 };
  /** per-application statistics and limits, while attached */
  private stats: AppStats | null = null;
  readonly limits: AppLimits;
  private cpus = 1;
  private statsAt = 0;

  constructor(private readonly o: EbpfOptions) {
    this.limits = new AppLimits({ host: o.limitHost ?? this.systemLimitHost(), table: o.table ?? 'qosd', log: o.log, writeClasses: (live, gone) => this.writeLimits(live, gone) });
    if (o.registry) registerAppMetrics(o.registry, () => this.stats, () => this.readStats());
  }

  /** limits.ts's host: this namespace's links and tc, our programs through qosbpf.node */
  private systemLimitHost(): LimitHost {
    return {
      links: systemLinks,
      tc: async (lines) => { await run(['tc', '-batch', '-'], { input: lines.join('\n') + '\n', pkg: 'iproute2', code: 'QOS_ERR_KERNEL' }); },
      ip: async (argv) => { await run(['ip', ...argv], { pkg: 'iproute2', code: 'QOS_ERR_KERNEL' }); },
      attach: (ifindex, egress, ifb) => { if (this.h !== null) this.n.tcAttach(this.h, egress ? 'qosd_limit_egress' : 'qosd_limit_ingress', ifindex, egress, ifb, LIMIT_PRIO); },
      detach: (ifindex, egress) => this.n.tcDetach(ifindex, egress, LIMIT_PRIO),
      tag: (pid, fd, id) => {
        if (this.h === null) return false;
        const b = Buffer.alloc(2);
        b.writeUInt16LE(id);
        return this.n.tagSocket(this.fds.qosd_tags!, pid, fd, TAG_LIMIT_OFFSET, b);
      },
    };
  }

  /** qosd_limits: each live limit's classes (0: none that way); the ids gone deleted. */
  private writeLimits(live: ReadonlyMap<number, DecisionLimit>, gone: readonly number[]): void {
    if (this.h === null) return;
    const fd = this.fds.qosd_limits!;
    if (gone.length) this.n.delete(fd, Buffer.concat(gone.map((id) => u32le(id))));
    if (!live.size) return;
    const keys = Buffer.concat([...live.keys()].map((id) => u32le(id)));
    const values = Buffer.concat([...live].map(([id, l]) => Buffer.concat([
      u32le(l.egress !== undefined ? limitClass(id, 'egress').id : 0), u32le(l.ingress !== undefined ? limitClass(id, 'ingress').id : 0)])));
    this.n.update(fd, keys, values);
  }

  /** The per-application limit process pid's socket fd is under, read from its tag in the
   * kernel (qos explain): null if none, or why it cannot be said. */
  socketLimit(pid: number, fd: number): { name: string; id: number; egress_bps: number | null; ingress_bps: number | null } | null | string {
    if (this.h === null) return `the eBPF programs are not attached: ${this.problem ?? 'no limit is in place'}`;
    let tag: Buffer | null;
    try { tag = this.n.socketStorage(this.fds.qosd_tags!, pid, fd); } catch (e) { return `cannot read the socket's tag: ${(e as Error).message}`; }
    const id = tag ? tag.readUInt16LE(TAG_LIMIT_OFFSET) : 0;
    if (!id) return null;
    const l = this.limits.live(id);
    return { name: this.limits.nameOf(id) ?? `limit ${id} (no longer in the policy)`, id, egress_bps: l?.egress !== undefined ? l.egress * 8 : null, ingress_bps: l?.ingress !== undefined ? l.ingress * 8 : null };
  }

  /** Folds the kernel's counters into the statistics now. */
  readStats(): void {
    if (this.h === null || !this.stats) return;
    const now = Date.now();
    this.stats.fold(decodeStats(this.n.dump(this.fds.qosd_stats!), this.cpus), decodeExeNames(this.n.dump(this.fds.qosd_exe_names!)), now);
    this.statsAt = now;
  }

  /** The statistics of one dimension (GET /v1/apps), read afresh unless read within 500 ms. */
  apps(by: Dimension, n?: number): Record<string, unknown> {
    if (this.h === null) throw new QosError('QOS_ERR_ENVIRONMENT', `per-application statistics need the eBPF programs: ${this.problem ?? 'not attached'}`);
    if (!this.stats) throw new QosError('QOS_ERR_ENVIRONMENT', 'per-application statistics are off (qos daemon --stats off)');
    if (Date.now() - this.statsAt > 500) this.readStats();
    return { at: new Date(this.statsAt).toISOString(), by, ...this.stats.rows(by, n), total: { ...this.stats.total } };
  }

  private get n(): Native { return this.o.native ?? loadEbpf(); }

  get attached(): boolean { return this.h !== null; }

  async start(doc?: PolicyDoc): Promise<void> {
    if (this.o.mode === 'off') { this.problem = 'eBPF marking is off (--ebpf off)'; return; }
    try {
      const cg = this.o.cgroup ?? cgroup2Root();
      if (!cg) throw new QosError('QOS_ERR_ENVIRONMENT', 'no cgroup v2 hierarchy is mounted (mount -t cgroup2 none /sys/fs/cgroup/unified, or boot with a unified hierarchy)');
      if (!existsSync(cg)) throw new QosError('QOS_ERR_ENVIRONMENT', `the cgroup ${cg} does not exist`);
      const object = this.o.object ?? EXE_MARK_OBJECT;
      if (!this.o.native && !existsSync(object)) throw new QosError('QOS_ERR_ENVIRONMENT', `${object} is missing: build it with make -C bpf (Debian packages clang, libbpf-dev)`);
      let n: Native;
      try { n = this.n; } catch (e) { throw new QosError('QOS_ERR_ENVIRONMENT', `cannot load the eBPF loader ${NATIVE_BPF}: ${(e as Error).message} (Debian package libbpf1; build with make -C native)`); }
      const skip = this.o.stats === false ? COUNTING_PROGRAMS : [];
      try { this.h = n.open(object, cg, skip.join(',')); } catch (e) { throw new QosError('QOS_ERR_ENVIRONMENT', `the kernel did not take the eBPF programs: ${(e as Error).message}`); }
      const d = n.describe(this.h);
      this.fds = Object.fromEntries(d.maps.map((m) => [m.name, m.fd]));
      // the programs on the cgroup (the tc ones go on interfaces, with limits)
      this.programs = d.programs.filter((p) => p.section.startsWith('cgroup') && !skip.includes(p.name));
      this.links = d.links;
      this.cgroup = cg;
      this.problem = null;
      this.cpus = possibleCpus();
      if (this.o.stats !== false) this.stats = new AppStats(new HostNaming((uid) => this.users.get(uid, Date.now()), cgroup2Root()), this.o.statsLabels ?? 20);
      await this.limits.cleanLeftovers();
    } catch (e) {
      if (this.o.mode === 'on') throw e;
      this.problem = (e as Error).message;
      this.o.log.warn({ err: this.problem }, 'eBPF marking not attached (--ebpf auto): programs the agent cannot reach are marked by nftables only');
      return;
    }
    if (doc) {
      try { this.setPolicy(doc); } catch (e) {
        await this.stop();
        if (this.o.mode === 'on') throw e;
        this.problem = (e as Error).message;
        this.o.log.warn({ err: this.problem }, 'eBPF marking not attached (--ebpf auto): the policy did not fit its maps');
        return;
      }
    }
    this.timers.push(this.o.clock.every(this.o.statsMs ?? 5000, () => {
      try { this.readStats(); } catch (e) { this.o.log.error({ err: (e as Error).message }, 'reading the per-application counters failed'); }
    }));
    this.timers.push(this.o.clock.every(this.o.rescanMs ?? 10_000, () => {
      this.sweep();
      this.limits.refresh();
      try { this.write(false); } catch (e) { this.o.log.error({ err: (e as Error).message }, 'eBPF rescan failed: the last generation stays'); }
    }));
    this.o.log.info({ cgroup: this.cgroup, programs: this.programs.map((p) => `${p.section} id ${p.id}`), generation: this.gen, files: this.files.size }, 'eBPF marking attached');
  }

  async stop(): Promise<void> {
    for (const t of this.timers) t.cancel();
    this.timers = [];
    if (this.h !== null) {
      await this.limits.stop();
      this.n.close(this.h);
      this.stats = null;
      this.h = null;
      this.o.log.info({ cgroup: this.cgroup }, 'eBPF programs detached, maps freed');
    }
  }

  /** A new policy: its eBPF rules written as the next generation (throws if the maps refuse it:
   * the policy is then refused, as when the kernel rules refuse one). */
  setPolicy(doc: PolicyDoc): void {
    const prev = { doc: this.doc, rules: this.rules, names: this.ruleNames };
    this.doc = doc;
    const names = (this.o.names ?? systemNames)();
    // the rules as the programs check them: exe rules and the exe-less ones before them
    const limitId = (key: string) => this.limits.idOf(key);
    this.rules = doc.rules.flatMap((r, i) => policyRuleInEbpf(r, i, names, limitId).rule ?? []);
    this.ruleNames = doc.rules.map((r, i) => r.name ?? `rule-${i + 1}`);
    if (this.h === null) return;
    try { this.write(true); } catch (e) { Object.assign(this, { doc: prev.doc, rules: prev.rules, ruleNames: prev.names }); throw e; }
    this.limits.setPolicy(doc);
  }

  /** Resolves the rules' files and writes the maps as a new generation if anything changed
   * (or always, if told). */
  private write(always: boolean): void {
    if (this.h === null || !this.doc) return;
    const n = this.n;
    const patterns = [...new Set(this.rules.flatMap((r) => r.exe ?? []))];
    const resolved = (this.o.resolve ?? resolvePatterns)(patterns);
    const matched = new Map<string, { file: ResolvedFile; rules: Set<number> }>();
    for (const r of this.rules) for (const p of r.exe ?? []) for (const f of resolved.get(p)!.files) {
      const k = `${f.dev}:${f.ino}`;
      const m = matched.get(k) ?? { file: f, rules: new Set<number>() };
      m.rules.add(r.index);
      matched.set(k, m);
    }
    const entries: { file: ResolvedFile; slots: ReturnType<typeof entrySlots> }[] = [];
    for (const m of matched.values()) {
      const s = entrySlots(this.rules, m.rules);
      if (s.slots.length) entries.push({ file: m.file, slots: s });
    }
    const values = Buffer.alloc(entries.length * ENTRY_SIZE);
    entries.forEach((e, i) => encodeEntry(e.slots.slots, values, i * ENTRY_SIZE));
    const files = entries.map((e) => `${e.file.dev}:${e.file.ino}`).join(',');
    if (!always && files === this.liveFiles && values.equals(this.liveValues)) return;
    const next = (this.gen + 1) >>> 0;
    const keys = Buffer.alloc(entries.length * KEY_SIZE);
    entries.forEach((e, i) => encodeKey(next, e.file, keys, i * KEY_SIZE));
    const exeFd = this.fds.qosd_exe!, genFd = this.fds.qosd_gen!;
    try {
      n.update(exeFd, keys, values);
    } catch (e) {
      try { n.delete(exeFd, keys); } catch { /* what was written goes below, or with the next generation */ }
      throw new QosError('QOS_ERR_ENVIRONMENT', `the eBPF map refused the policy's ${entries.length} executables: ${(e as Error).message}`);
    }
    n.update(genFd, u32le(0), u32le(next));
    n.delete(exeFd, this.oldKeys);
    this.gen = next;
    this.oldKeys = this.liveKeys;
    this.liveKeys = keys;
    this.liveFiles = files;
    this.liveValues = values;
    this.files = new Map(entries.map((e) => [`${e.file.dev}:${e.file.ino}`, e.file]));
    this.fileNotes = [...resolved.values()].flatMap((r) => r.notes);
    this.cut = entries.filter((e) => e.slots.cut.length).map((e) => ({ file: e.file.path, rules: e.slots.cut }));
    this.counts.generations++;
    this.o.log.info({ generation: next, files: entries.length, rules: this.rules.filter((r) => r.exe).length, notes: this.fileNotes.length ? this.fileNotes : undefined }, 'eBPF policy generation live');
  }

  /** An agent connected for process pid (started at start, clock ticks): the programs leave
   * its marks to the agent. */
  agentConnected(pid: number, start: number): void {
    if (this.h === null || start < 0) return;
    try { this.n.update(this.fds.qosd_agent!, u32le(pid), agentValue(start)); this.agents.set(pid, start); this.counts.agent_processes++; } catch (e) { this.o.log.warn({ pid, err: (e as Error).message }, 'eBPF agent map update failed'); }
  }

  /** The process is gone: its entry leaves (a reused pid would not match its start time anyway). */
  agentGone(pid: number): void {
    if (this.h === null || !this.agents.delete(pid)) return;
    try { this.n.delete(this.fds.qosd_agent!, u32le(pid)); } catch { /* not there */ }
  }

  /** Drops the agent map's processes that are gone (a process that outlived its last agent
   * connection). */
  private sweep(): void {
    for (const [pid, start] of this.agents) if (startTime(pid) !== start) this.agentGone(pid);
  }

  /** The sockets the programs decided that are still open. */
  flows(): EbpfFlow[] {
    if (this.h === null) return [];
    return decodeSockets(this.n.dump(this.fds.qosd_sockets!)).map((e) => {
      const d: Decision = {};
      if (e.result & R_TOS) d.dscp = e.tos >> 2;
      if (e.result & R_PRIO) d.priority = e.prio;
      const decision = Object.keys(d).length ? d : null;
      return {
        path: 'ebpf', cookie: e.cookie.toString(), pid: e.pid, uid: e.uid, user: this.users.get(e.uid, Date.now()),
        exe: this.files.get(`${e.file.dev}:${e.file.ino}`)?.path ?? `dev ${e.file.dev} inode ${e.file.ino}`,
        family: e.family, type: e.type === 1 ? 'stream' : e.type === 2 ? 'dgram' : null,
        proto: e.protocol === 6 ? 'tcp' : e.protocol === 17 ? 'udp' : null,
        remote: e.remote, event: e.hook === 2 ? 'sendto' : 'connect',
        decision, class: decisionClass(decision), rule: this.ruleNames[e.rule] ?? `rule-${e.rule + 1}`,
        app_tos_kept: (e.result & R_APP_TOS) !== 0,
      };
    });
  }

  private counter(i: number): number {
    return perCpuSum(this.n.lookup(this.fds.qosd_counts!, u32le(i)));
  }

  /** Hits per executable entry of the live generation (a diagnostic: `qos status --json`). */
  private hits(): number {
    if (this.h === null || !this.liveKeys.length) return 0;
    let total = 0;
    for (let at = 0; at < this.liveKeys.length; at += KEY_SIZE) {
      const v = this.n.lookup(this.fds.qosd_exe!, this.liveKeys.subarray(at, at + KEY_SIZE));
      if (v) total += Number(v.readBigUInt64LE(8));
    }
    return total;
  }

  status(): Record<string, unknown> {
    return {
      ebpf: {
        mode: this.o.mode, attached: this.h !== null, problem: this.problem, cgroup: this.cgroup,
        programs: this.programs.map((p) => ({ name: p.name, attach: p.section, id: p.id ?? null })), links: this.links,
        generation: this.gen, rules: this.rules.filter((r) => r.exe).map((r) => r.name), files: [...this.files.values()].map((f) => f.path).sort(),
        notes: [...this.fileNotes, ...this.cut.map((c) => `${c.file}: more rules can match it than an entry holds; not checked by eBPF: ${c.rules.join(', ')}`)],
        calls_decided: this.hits(), sockets_decided: this.h === null ? 0 : this.counter(0), calls_refused: this.h === null ? 0 : this.counter(1), generations_written: this.counts.generations,
        stats: this.stats ? { reads: this.stats.reads, programs: this.stats.tracked('program'), restarts: this.stats.restarts } : null,
        limits: this.limits.status(),
      },
    };
  }
}
