/* Per-application statistics (docs/apps.md), read from the counters bpf/exe-mark.bpf.c keeps in
 * the kernel: bytes and packets each socket's packets carried, sent and received, under the
 * tag its socket got at creation (the executable's device and inode, the uid, the cgroup) and
 * the packet's DSCP. The daemon folds the kernel's counters into its own totals when it reads
 * them (every few seconds, and when `qos top`, the dashboard or Prometheus asks), never per
 * packet: by program, user, unit (cgroup) and DSCP class.
 *
 * Everything is bounded. The kernel map holds 16,384 combinations (least recently used leave
 * first: the bytes they counted since the last read are lost, never a total already folded);
 * each table here holds MAX_ROWS rows, past which the least recently active row is folded into
 * `other`, so totals stay whole. Prometheus gets at most `labels` programs (and as many users
 * and units) as labelled series, and the rest under "other"; a row keeps its label while it is
 * active and gives it up after IDLE_MS without traffic. A labelled series counts from the moment
 * its row got the label (before that, its bytes were in "other"): the sum over the series is the
 * total. Pure but for the reads it is given (tests give fakes). */

import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Counter, type Registry } from 'prom-client';
import { dscpName } from '../policy/dscp.js';
import { kernelDev } from './encode.js';
import { QosError } from '../errors.js';

/** struct stat_key and struct stat_val (per CPU, each rounded to 8 bytes) */
export const STAT_KEY_SIZE = 32;
export const STAT_VAL_SIZE = 16;
/** struct exe_id and struct exe_name (PATH_PARTS components of PART_LEN bytes, tgid, depth) */
export const EXE_ID_SIZE = 16;
const PATH_PARTS = 8, PART_LEN = 40;
export const EXE_NAME_SIZE = PATH_PARTS * PART_LEN + 8;

export const MAX_ROWS = 4096;
export const IDLE_MS = 5 * 60_000;

export type Dimension = 'program' | 'user' | 'unit' | 'class';
export const DIMENSIONS: readonly Dimension[] = ['program', 'user', 'unit', 'class'];

/** One counted combination, summed over the CPUs. */
export interface StatEntry { key: string; ino: bigint; dev: number; uid: number; cgid: bigint; dir: 0 | 1; dscp: number; packets: bigint; bytes: bigint }

/** The entries of a dump() of qosd_stats (each a key, then one value per CPU). */
export function decodeStats(buf: Buffer, cpus: number): StatEntry[] {
  const rec = STAT_KEY_SIZE + STAT_VAL_SIZE * cpus;
  const out: StatEntry[] = [];
  for (let at = 0; at + rec <= buf.length; at += rec) {
    let packets = 0n, bytes = 0n;
    for (let c = 0; c < cpus; c++) {
      const o = at + STAT_KEY_SIZE + c * STAT_VAL_SIZE;
      packets += buf.readBigUInt64LE(o);
      bytes += buf.readBigUInt64LE(o + 8);
    }
    out.push({
      key: buf.toString('hex', at, at + STAT_KEY_SIZE),
      ino: buf.readBigUInt64LE(at), cgid: buf.readBigUInt64LE(at + 8), dev: buf.readUInt32LE(at + 16), uid: buf.readUInt32LE(at + 20),
      dir: buf.readUInt8(at + 24) ? 1 : 0, dscp: buf.readUInt8(at + 25), packets, bytes,
    });
  }
  return out;
}

/** An executable as the kernel saw it: its path within its filesystem (complete: false when it
 * is deeper than the programs read, its first components missing), and a process that ran it. */
export interface ExeSeen { path: string; complete: boolean; pid: number }

/** qosd_exe_names' entries: "dev:ino" -> what the kernel saw of the file. */
export function decodeExeNames(buf: Buffer): Map<string, ExeSeen> {
  const out = new Map<string, ExeSeen>();
  const rec = EXE_ID_SIZE + EXE_NAME_SIZE;
  for (let at = 0; at + rec <= buf.length; at += rec) {
    const v = buf.subarray(at + EXE_ID_SIZE, at + rec);
    const depth = v.readUInt32LE(PATH_PARTS * PART_LEN + 4);
    const parts: string[] = [];
    for (let i = 0; i < Math.min(depth, PATH_PARTS); i++) {
      const p = v.subarray(i * PART_LEN, (i + 1) * PART_LEN);
      const end = p.indexOf(0);
      parts.unshift(p.toString('utf8', 0, end < 0 ? PART_LEN : end));
    }
    out.set(`${buf.readUInt32LE(at)}:${buf.readBigUInt64LE(at + 8)}`, { path: '/' + parts.join('/'), complete: depth <= PATH_PARTS, pid: v.readUInt32LE(PATH_PARTS * PART_LEN) });
  }
  return out;
}

/** A row's counts: sent (tx) and received (rx). */
export interface Counts { tx_bytes: number; rx_bytes: number; tx_packets: number; rx_packets: number }
const zero = (): Counts => ({ tx_bytes: 0, rx_bytes: 0, tx_packets: 0, rx_packets: 0 });

export interface Row extends Counts {
  /** program: "dev:ino" ("-" for sockets older than the programs); user: the uid; unit: the
   * cgroup id; class: the DSCP */
  key: string;
  /** what people read: the program's path, the user's name, the unit, the class name */
  name: string;
  /** bytes per second over the last read's interval, sent and received */
  tx_bps: number;
  rx_bps: number;
  /** program rows: a process that ran it (the latest seen) */
  pid?: number;
  /** program rows: the users that ran it (at most 8 kept) */
  users?: string[];
  last_active: number;
}

interface Table { rows: Map<string, Row>; other: Row; labelled: Map<string, Counts>; otherLabel: Counts }

/** How the stats learn names (tests give fakes). */
export interface Naming {
  /** the program's path: a running process's (pid: one that ran it), or from where the kernel
   * saw it in its filesystem (seen) and the mount table */
  program(dev: number, ino: bigint, pid: number, seen: ExeSeen | undefined): string;
  user(uid: number): string;
  /** the unit (the cgroup's last component ending in .service, .scope or .slice, else its
   * path), from the cgroup id */
  unit(cgid: bigint): string;
}


export class AppStats {
  private readonly last = new Map<string, { packets: bigint; bytes: bigint }>();
  private readonly tables = new Map<Dimension, Table>(DIMENSIONS.map((d) => [d, { rows: new Map(), other: { key: 'other', name: 'other', ...zero(), tx_bps: 0, rx_bps: 0, last_active: 0 }, labelled: new Map(), otherLabel: zero() }]));
  private lastRead = 0;
  readonly total: Counts = zero();
  reads = 0;
  /** kernel entries seen to restart from zero (evicted and made again) */
  restarts = 0;

  constructor(private readonly naming: Naming, private readonly labels = 20, private readonly maxRows = MAX_ROWS) {}

  /** Folds one read of the kernel's counters, taken at `now` (ms). */
  fold(entries: readonly StatEntry[], exeNames: ReadonlyMap<string, ExeSeen>, now: number): void {
    const dt = this.lastRead ? (now - this.lastRead) / 1000 : 0;
    this.lastRead = now;
    this.reads++;
    const deltas = new Map<Dimension, Map<string, { counts: Counts; e: StatEntry }>>(DIMENSIONS.map((d) => [d, new Map()]));
    const seen = new Set<string>();
    for (const e of entries) {
      seen.add(e.key);
      const prev = this.last.get(e.key);
      let dp = e.packets, db = e.bytes;
      if (prev) {
        if (e.packets >= prev.packets && e.bytes >= prev.bytes) { dp -= prev.packets; db -= prev.bytes; } else this.restarts++;
      }
      this.last.set(e.key, { packets: e.packets, bytes: e.bytes });
      if (!dp && !db) continue;
      const c = zero();
      if (e.dir === 0) { c.tx_bytes = Number(db); c.tx_packets = Number(dp); } else { c.rx_bytes = Number(db); c.rx_packets = Number(dp); }
      add(this.total, c);
      const keys: [Dimension, string][] = [['program', e.ino ? `${e.dev}:${e.ino}` : '-'], ['user', String(e.uid)], ['unit', String(e.cgid)], ['class', String(e.dscp)]];
      for (const [d, k] of keys) {
        const m = deltas.get(d)!;
        const x = m.get(k);
        if (x) add(x.counts, c); else m.set(k, { counts: { ...c }, e });
      }
    }
    // entries the kernel evicted: what they counted since the last read is lost
    for (const k of this.last.keys()) if (!seen.has(k)) this.last.delete(k);
    for (const [d, m] of deltas) {
      const t = this.tables.get(d)!;
      for (const r of t.rows.values()) { r.tx_bps = 0; r.rx_bps = 0; }
      // a label idle for IDLE_MS is given up (its row stays), for a row active now to take
      if (d !== 'class') for (const k of t.labelled.keys()) if (now - (t.rows.get(k)?.last_active ?? 0) > IDLE_MS) t.labelled.delete(k);
      for (const [k, { counts, e }] of m) {
        let r = t.rows.get(k);
        if (!r) {
          if (t.rows.size >= this.maxRows) this.evictOldest(t);
          r = { key: k, name: this.nameOf(d, e, exeNames), ...zero(), tx_bps: 0, rx_bps: 0, last_active: now };
          t.rows.set(k, r);
        }
        add(r, counts);
        r.last_active = now;
        if (dt > 0) { r.tx_bps = counts.tx_bytes / dt; r.rx_bps = counts.rx_bytes / dt; }
        if (d === 'program') {
          const pid = exeNames.get(k)?.pid;
          if (pid) r.pid = pid;
          const u = this.naming.user(e.uid);
          r.users ??= [];
          if (!r.users.includes(u) && r.users.length < 8) r.users.push(u);
        }
        // Prometheus: the row's label, if it has one or one is free; else "other"
        const l = t.labelled.get(k);
        if (l) add(l, counts);
        else if (d === 'class' || t.labelled.size < this.labels) t.labelled.set(k, { ...counts });
        else add(t.otherLabel, counts);
      }
    }
  }

  private nameOf(d: Dimension, e: StatEntry, exeNames: ReadonlyMap<string, ExeSeen>): string {
    if (d === 'user') return this.naming.user(e.uid);
    if (d === 'unit') return this.naming.unit(e.cgid);
    if (d === 'class') return dscpName(e.dscp);
    if (!e.ino) return '(sockets older than the daemon)';
    const n = exeNames.get(`${e.dev}:${e.ino}`);
    return this.naming.program(e.dev, e.ino, n?.pid ?? 0, n);
  }

  private evictOldest(t: Table): void {
    let oldest: Row | null = null;
    for (const r of t.rows.values()) if (!oldest || r.last_active < oldest.last_active) oldest = r;
    if (!oldest) return;
    t.rows.delete(oldest.key);
    add(t.other, oldest);
    t.other.last_active = Math.max(t.other.last_active, oldest.last_active);
  }

  /** How many rows one dimension tracks now (qos status: without sorting them). */
  tracked(d: Dimension): number { return this.tables.get(d)!.rows.size; }

  /** The rows of one dimension, the most bytes first (at most n), and the rest's sum. */
  rows(d: Dimension, n = this.maxRows): { rows: Row[]; other: Counts | null; tracked: number } {
    const t = this.tables.get(d)!;
    const all = [...t.rows.values()].sort((a, b) => b.tx_bytes + b.rx_bytes - (a.tx_bytes + a.rx_bytes));
    const rest = all.slice(n).reduce((acc, r) => add(acc, r), pick(t.other));
    const hasRest = rest.tx_bytes + rest.rx_bytes + rest.tx_packets + rest.rx_packets > 0;
    return { rows: all.slice(0, n).map((r) => ({ ...r, ...(r.users ? { users: [...r.users] } : {}) })), other: hasRest ? rest : null, tracked: this.tracked(d) };
  }

  /** The Prometheus series of one dimension: [label value, counts] (labelled rows by name, and
   * "other"), at most labels + 1. */
  series(d: Dimension): [string, Counts][] {
    const t = this.tables.get(d)!;
    const out: [string, Counts][] = [];
    for (const [k, c] of t.labelled) out.push([t.rows.get(k)?.name ?? k, c]);
    if (t.otherLabel.tx_bytes + t.otherLabel.rx_bytes + t.otherLabel.tx_packets + t.otherLabel.rx_packets) out.push(['other', t.otherLabel]);
    return out;
  }
}

function add(into: Counts, c: Counts): Counts {
  into.tx_bytes += c.tx_bytes; into.rx_bytes += c.rx_bytes; into.tx_packets += c.tx_packets; into.rx_packets += c.rx_packets;
  return into;
}
const pick = (c: Counts): Counts => ({ tx_bytes: c.tx_bytes, rx_bytes: c.rx_bytes, tx_packets: c.tx_packets, rx_packets: c.rx_packets });

/** Prometheus counters over the stats: qosd_app_bytes_total and qosd_app_packets_total by
 * program, qosd_user_bytes_total by user, qosd_unit_bytes_total by unit, qosd_class_bytes_total
 * by DSCP class, each with direction (tx, rx). read() brings the stats up to date first. */
export function registerAppMetrics(registry: Registry, stats: () => AppStats | null, read: () => void): void {
  const defs: [string, Dimension, string, 'bytes' | 'packets'][] = [
    ['qosd_app_bytes_total', 'program', 'Bytes each program\'s sockets sent (tx) and received (rx), IP headers included, counted in the kernel; programs past the label bound are "other" (docs/apps.md)', 'bytes'],
    ['qosd_app_packets_total', 'program', 'Packets each program\'s sockets sent (tx) and received (rx), counted in the kernel (docs/apps.md)', 'packets'],
    ['qosd_user_bytes_total', 'user', 'Bytes each user\'s sockets sent and received (docs/apps.md)', 'bytes'],
    ['qosd_unit_bytes_total', 'unit', 'Bytes the sockets of each unit (cgroup) sent and received (docs/apps.md)', 'bytes'],
    ['qosd_class_bytes_total', 'class', 'Bytes sent and received by DSCP class of the packet (docs/apps.md)', 'bytes'],
  ];
  for (const [i, [name, d, help, what]] of defs.entries()) {
    new Counter({
      name, help, labelNames: [d, 'direction'], registers: [registry],
      collect() {
        this.reset();
        const s = stats();
        if (!s) return;
        // one read per scrape: a scrape collects the metrics in the order they were registered
        if (i === 0) read();
        for (const [label, c] of s.series(d)) {
          this.inc({ [d]: label, direction: 'tx' }, what === 'bytes' ? c.tx_bytes : c.tx_packets);
          this.inc({ [d]: label, direction: 'rx' }, what === 'bytes' ? c.rx_bytes : c.rx_packets);
        }
      },
    });
  }
}

/** Names from this host: /proc for programs, the cgroup v2 tree for units. */
export class HostNaming implements Naming {
  private readonly programs = new Map<string, string>();
  private readonly units = new Map<string, string>();
  private walkedAt = 0;

  constructor(private readonly users: (uid: number) => string, private readonly cgroupRoot: string | null) {}

  program(dev: number, ino: bigint, pid: number, seen: ExeSeen | undefined): string {
    const k = `${dev}:${ino}`;
    const known = this.programs.get(k);
    if (known) return known;
    let path: string | null = null;
    if (pid) {
      try {
        const st = statSync(`/proc/${pid}/exe`, { bigint: true });
        if (st.ino === ino && kernelDev(st.dev) === dev) path = readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, '');
      } catch { /* gone */ }
    }
    if (!path && seen) path = seen.complete ? mountedPath(dev, seen.path) : null;
    if (!path) return seen ? `…${seen.path}` : `dev ${dev >>> 20}:${dev & 0xfffff} inode ${ino}`;
    if (this.programs.size >= MAX_ROWS) this.programs.clear();
    this.programs.set(k, path);
    return path;
  }

  user(uid: number): string { return this.users(uid); }

  unit(cgid: bigint): string {
    const k = String(cgid);
    let u = this.units.get(k);
    if (u) return u;
    // a cgroup not seen yet: walk the tree again, at most every 10 s
    const now = Date.now();
    if (this.cgroupRoot && now - this.walkedAt > 10_000) {
      this.walkedAt = now;
      if (this.units.size >= MAX_ROWS) this.units.clear();
      walkCgroups(this.cgroupRoot, '', 0, (id, rel) => this.units.set(String(id), unitName(rel)));
      u = this.units.get(k);
    }
    return u ?? `cgroup ${k}`;
  }
}

/** A path within the filesystem on dev (the kernel's encoding) as this process's mount table
 * shows it: under the first mount of that filesystem whose root holds it; null if none does. */
export function mountedPath(dev: number, rel: string, mountinfo = '/proc/self/mountinfo'): string | null {
  let text: string;
  try { text = readFileSync(mountinfo, 'utf8'); } catch { return null; }
  const want = `${dev >>> 20}:${dev & 0xfffff}`;
  const unescape = (x: string) => x.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f[2] !== want) continue;
    const root = unescape(f[3]!), point = unescape(f[4]!);
    if (root === '/') return point === '/' ? rel : point + rel;
    if (rel === root || rel.startsWith(root + '/')) return (point === '/' ? '' : point) + rel.slice(root.length) || '/';
  }
  return null;
}

/** The unit of a cgroup path: its last component that is a systemd unit, else the path. */
export function unitName(rel: string): string {
  const parts = rel.split('/').filter(Boolean);
  for (let i = parts.length - 1; i >= 0; i--) if (/\.(service|scope|slice)$/.test(parts[i]!)) return parts[i]!;
  return '/' + parts.join('/');
}

function walkCgroups(root: string, rel: string, depth: number, f: (id: bigint, rel: string) => void): void {
  if (depth > 12) return;
  try { f(statSync(join(root, rel), { bigint: true }).ino, rel); } catch { return; }
  let names: string[];
  try { names = readdirSync(join(root, rel), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name); } catch { return; }
  for (const n of names) walkCgroups(root, rel ? `${rel}/${n}` : n, depth + 1, f);
}

/** How many CPUs the kernel's per-CPU maps have a value for (possible CPUs). */
export function possibleCpus(file = '/sys/devices/system/cpu/possible'): number {
  const text = readFileSync(file, 'utf8').trim();
  let n = 0;
  for (const part of text.split(',')) {
    const [a, b] = part.split('-').map(Number);
    n += b === undefined ? 1 : b - a! + 1;
  }
  return n;
}

/** The `by` of GET /v1/apps and `qos top --by` (default program). */
export function appsDimension(v: string | null | undefined): Dimension {
  if (v === null || v === undefined || v === '') return 'program';
  if ((DIMENSIONS as readonly string[]).includes(v)) return v as Dimension;
  throw new QosError('QOS_ERR_USAGE', `by "${v}": one of ${DIMENSIONS.join(', ')}`);
}

/** The `n` of GET /v1/apps: how many rows (default all, at most MAX_ROWS). */
export function appsCount(v: string | null | undefined): number {
  if (v === null || v === undefined || v === '') return MAX_ROWS;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > MAX_ROWS) throw new QosError('QOS_ERR_USAGE', `n "${v}": a number of rows from 0 to ${MAX_ROWS}`);
  return n;
}
