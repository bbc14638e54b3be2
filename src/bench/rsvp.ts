/* `qos rsvp bench`: what RSVP costs on this machine (docs/rsvp.md, "Benchmark").
 *
 * - decode_msgs_per_s, encode_msgs_per_s: a typical Path (SESSION, RSVP_HOP, TIME_VALUES,
 *   POLICY_DATA with a user's and an application's identity, SENDER_TEMPLATE, SENDER_TSPEC, a
 *   full ADSPEC: what a host sends for a media stream) decoded from its bytes, checksum
 *   checked, and encoded to bytes, checksum computed; each measured for a slice of the
 *   process's CPU time, the two alternating, over rounds: messages per second of one core,
 *   the median with min and max (per second of wall-clock time too, in `spread`, for
 *   information: on a shared machine that one says how much of a core the process got).
 * - router_cpu_pct_10k_sessions, router_rss_mb_10k_sessions: `qos rsvp router` in a network
 *   namespace between a sender host announcing 10,000 sessions (UDP, 10 kB/s each) and a
 *   receiver host reserving each (Controlled Load, FF), all refreshing every 30 s
 *   (rsvp-load.ts: ordinary RSVP hosts). Once the router has installed every reservation
 *   (an HTB class and an exact filter each) and holds the path and reservation state of
 *   every session, its CPU time (the router's Node process and its rsvpio helper, from
 *   /proc) over a window of two refresh periods, as a percentage of one core, and their
 *   resident memory at its end. */

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeStale } from '../demo/net.js';
import { QosError } from '../errors.js';
import { installed, runSync, start, type Child } from '../exec.js';
import { QOS_CLI } from '../daemon/child.js';
import { statTicks } from '../script/cpu.js';
import { packageOf } from '../prerequisites.js';
import { NetChain } from './netchain.js';
import { decode, encode, type RsvpMessage } from '../rsvp/message.js';
import { SAMPLE_MESSAGES_V4 } from '../rsvp/samples.js';
import type { Target } from './agent.js';
import { spread, type Spread } from './tc-figures.js';

/** A typical Path: the sample one, which carries every object a sender's Path does. */
export const TYPICAL_PATH: RsvpMessage = SAMPLE_MESSAGES_V4[0]!;

/** Messages per second of fn, over about ms milliseconds of this process's CPU time (user and
 * system): what one core does, whatever share of it the shared machine gives this process.
 * Also per second of wall-clock time, for information. */
function rate(fn: () => void, ms: number, batch = 1000): { cpu: number; wall: number } {
  let n = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let used = 0;
  while (used < ms * 1000) {
    for (let i = 0; i < batch; i++) fn();
    n += batch;
    const c = process.cpuUsage(c0);
    used = c.user + c.system;
  }
  return { cpu: (n * 1e6) / used, wall: (n * 1000) / (performance.now() - t0) };
}

export interface CodecRates { decode: Spread; encode: Spread; decodeWall: Spread; encodeWall: Spread; bytes: number }

/** Decoding and encoding the typical Path, in alternating slices of sliceMs over rounds. */
export function codecRates(rounds: number, sliceMs: number): CodecRates {
  const bytes = encode(TYPICAL_PATH);
  let sink = 0;
  const dec = () => { sink += decode(bytes).objects.length; };
  const enc = () => { sink += encode(TYPICAL_PATH)[3]!; };
  // a warm-up slice each, so the figures are of optimised code
  rate(dec, sliceMs); rate(enc, sliceMs);
  const d: { cpu: number; wall: number }[] = [], e: { cpu: number; wall: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    if (r % 2) { e.push(rate(enc, sliceMs)); d.push(rate(dec, sliceMs)); } else { d.push(rate(dec, sliceMs)); e.push(rate(enc, sliceMs)); }
  }
  if (sink < 0) throw new Error('unreachable');
  return {
    decode: spread(d.map((x) => x.cpu), 0), encode: spread(e.map((x) => x.cpu), 0),
    decodeWall: spread(d.map((x) => x.wall), 0), encodeWall: spread(e.map((x) => x.wall), 0), bytes: bytes.length,
  };
}

export interface RsvpBenchResult {
  decode_msgs_per_s: number;
  encode_msgs_per_s: number;
  [figure: string]: unknown;
  spread: Record<string, Spread>;
  targets: Record<string, Target>;
  setup: Record<string, unknown>;
}

export interface RsvpBenchOptions {
  rounds: number;
  sliceMs: number;
  progress?: (m: string) => void;
}

export function codecFigures(o: RsvpBenchOptions): Pick<RsvpBenchResult, 'decode_msgs_per_s' | 'encode_msgs_per_s'> & { spread: Record<string, Spread>; targets: Record<string, Target>; path_bytes: number } {
  const c = codecRates(o.rounds, o.sliceMs);
  o.progress?.(`a ${c.bytes}-byte Path: decoded ${c.decode.median}/s (${c.decode.min}-${c.decode.max}), encoded ${c.encode.median}/s (${c.encode.min}-${c.encode.max})`);
  return {
    decode_msgs_per_s: c.decode.median,
    encode_msgs_per_s: c.encode.median,
    path_bytes: c.bytes,
    spread: { decode_msgs_per_s: c.decode, encode_msgs_per_s: c.encode, decode_msgs_per_wall_s: c.decodeWall, encode_msgs_per_wall_s: c.encodeWall },
    targets: {
      decode_msgs_per_s: { value: c.decode.median, limit: 200_000, ok: c.decode.median >= 200_000 },
      encode_msgs_per_s: { value: c.encode.median, limit: 200_000, ok: c.encode.median >= 200_000 },
    },
  };
}


export interface RouterLoadOptions {
  sessions: number;
  refreshMs: number;
  windowMs: number;
  progress?: (m: string) => void;
}

export interface RouterLoad {
  cpu_pct: number;
  rss_mb: number;
  /** what the router held when the window closed (its SIGUSR1 state) */
  held: { sessions: number; psb: number; rsb: number; tcsb: number; reservations: number };
  /** RSVP messages it received and sent during the window */
  received: number;
  sent: number;
  setup_s: number;
  /** reservations changed or removed during the window: none, when nothing but refreshes came */
  tc_changes: number;
}

const PREFIX = 'qrb';

/** Why the router benchmark cannot run here, or null. */
export function routerBenchUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'qos rsvp bench needs root for its router load: it creates network namespaces, raw sockets and queueing disciplines (--codec-only measures the codec alone)';
  for (const tool of ['ip', 'tc', 'nft']) if (!installed(tool)) return `qos rsvp bench needs \`${tool}\` (apt-get install ${packageOf(tool)})`;
  return null;
}

/** utime + stime of a process, in clock ticks, and its resident set, bytes. */
function usage(pid: number): { ticks: number; rss: number } {
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { ticks: statTicks(readFileSync(`/proc/${pid}/stat`, 'latin1')), rss: rss ? Number(rss[1]) * 1024 : 0 };
}

/** A process and its children (the router's Node process and its rsvpio helper). */
function family(pid: number): number[] {
  const out = [pid];
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').split(' ').filter(Boolean)) out.push(...family(Number(c)));
    } catch { /* gone */ }
  }
  return out;
}

const sum = (pids: number[]) => pids.map(usage).reduce((a, b) => ({ ticks: a.ticks + b.ticks, rss: a.rss + b.rss }), { ticks: 0, rss: 0 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function routerLoad(o: RouterLoadOptions): Promise<RouterLoad> {
  const why = routerBenchUnavailable();
  if (why) throw new QosError('QOS_ERR_ENVIRONMENT', why);
  const say = o.progress ?? (() => undefined);
  removeStale(PREFIX);
  const dir = mkdtempSync(join(tmpdir(), 'qosd-bench-rsvp-'));
  const chain = new NetChain(PREFIX, ['gen', 'router', 'sink']);
  const procs: Child[] = [];
  try {
    const [gen, router, sink] = [chain.node('gen'), chain.node('router'), chain.node('sink')];
    const refresh = `${o.refreshMs}ms`;
    const r = start(['ip', 'netns', 'exec', router.ns, process.execPath, QOS_CLI, 'rsvp', 'router', '--json', '--refresh', refresh, '--link', `${router.left!.dev}=100Gbit`, '--link', `${router.right!.dev}=100Gbit`, '--state-dir', dir], { name: 'qos rsvp router' });
    procs.push(r);
    const lines: string[] = [];
    let installedCount = 0, changes = 0, buf = '';
    r.proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.includes('"kind":"installed"')) installedCount++;
        else if (line.includes('"kind":"changed"') || line.includes('"kind":"removed"')) changes++;
        else lines.push(line);
      }
    });
    const waitLine = async (pred: (l: string) => boolean, what: string, ms: number) => {
      const until = Date.now() + ms;
      while (!lines.some(pred)) {
        if (r.proc.exitCode !== null) throw new QosError('QOS_ERR_BENCH', `the router exited: ${r.stderr.trim().slice(-400)}`);
        if (Date.now() > until) throw new QosError('QOS_ERR_BENCH', `no ${what} from the router in ${ms / 1000} s`);
        await sleep(100);
      }
      return lines.find(pred)!;
    };
    await waitLine((l) => l.includes('"kind":"ready"'), 'start', 60_000);
    const t0 = performance.now();
    const load = (role: 'sender' | 'receiver', ns: string) => {
      const c = start([process.execPath, join(QOS_CLI, '../../bench/rsvp-load.js'), role, String(o.sessions), sink.left!.ip, String(o.refreshMs), gen.right!.ip], { netns: ns, name: `rsvp load ${role}`, stdio: ['pipe', 'pipe', 'pipe'] });
      procs.push(c);
      return c;
    };
    const receiver = load('receiver', sink.ns);
    await receiver.until('ready', 120_000, 'stdout');
    const sender = load('sender', gen.ns);
    await sender.until('ready', 120_000, 'stdout');
    say(`${o.sessions} sessions announced and reserved; waiting for the router to install them`);
    // a session whose first messages were lost is installed at its next refresh
    const until = Date.now() + 3 * o.refreshMs + o.sessions * 20;
    let last = -1;
    while (installedCount < o.sessions) {
      if (Date.now() > until) throw new QosError('QOS_ERR_BENCH', `the router installed ${installedCount} of ${o.sessions} reservations`);
      if (r.proc.exitCode !== null) throw new QosError('QOS_ERR_BENCH', `the router exited: ${r.stderr.trim().slice(-400)}`);
      if (installedCount !== last && installedCount % 1000 < 50) say(`${installedCount} reservations installed`);
      last = installedCount;
      await sleep(250);
    }
    const setupS = (performance.now() - t0) / 1000;
    say(`all ${o.sessions} installed in ${setupS.toFixed(0)} s; measuring the router for ${o.windowMs / 1000} s`);
    const pids = family(r.proc.pid!);
    const state = async () => {
      lines.length = 0;
      process.kill(r.proc.pid!, 'SIGUSR1');
      return JSON.parse(await waitLine((l) => l.includes('"kind":"state"'), 'state', 30_000)) as { counts: { sessions: number; psb: number; rsb: number; tcsb: number; received: number; sent: number }; reservations: unknown[] };
    };
    const before = await state();
    const u0 = sum(pids);
    const c0 = changes;
    const w0 = performance.now();
    await sleep(o.windowMs);
    const u1 = sum(pids);
    const w1 = performance.now();
    const after = await state();
    const hz = Number(runSync(['getconf', 'CLK_TCK']).stdout.trim()) || 100;
    const cpu = ((u1.ticks - u0.ticks) / hz) / ((w1 - w0) / 1000) * 100;
    return {
      cpu_pct: Math.round(cpu * 100) / 100,
      rss_mb: Math.round((u1.rss / 2 ** 20) * 10) / 10,
      held: { sessions: after.counts.sessions, psb: after.counts.psb, rsb: after.counts.rsb, tcsb: after.counts.tcsb, reservations: after.reservations.length },
      received: after.counts.received - before.counts.received,
      sent: after.counts.sent - before.counts.sent,
      setup_s: Math.round(setupS),
      tc_changes: changes - c0,
    };
  } finally {
    for (const p of procs.slice(1)) p.proc.stdin?.end();
    await procs[0]?.stop('SIGTERM', 120_000).catch(() => undefined);
    for (const p of procs) p.kill();
    chain.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The figures' name for a number of sessions: 10k for 10,000. */
export const sessionsName = (n: number) => (n % 1000 === 0 ? `${n / 1000}k` : String(n));

export async function benchRsvp(o: RsvpBenchOptions & { codecOnly: boolean } & Omit<RouterLoadOptions, 'progress'>): Promise<RsvpBenchResult> {
  const codec = codecFigures(o);
  const out: RsvpBenchResult = {
    decode_msgs_per_s: codec.decode_msgs_per_s, encode_msgs_per_s: codec.encode_msgs_per_s, path_bytes: codec.path_bytes,
    spread: codec.spread, targets: codec.targets,
    setup: { rounds: o.rounds, slice_ms: o.sliceMs, sessions: o.codecOnly ? null : o.sessions, refresh_ms: o.refreshMs, window_ms: o.windowMs, cpus: cpus().length, node: process.version },
  };
  if (o.codecOnly) return out;
  const load = await routerLoad({ ...o, ...(o.progress ? { progress: o.progress } : {}) });
  const k = sessionsName(o.sessions);
  out[`router_cpu_pct_${k}_sessions`] = load.cpu_pct;
  out[`router_rss_mb_${k}_sessions`] = load.rss_mb;
  out.router = load;
  out.targets[`router_cpu_pct_${k}_sessions`] = { value: load.cpu_pct, limit: 10, ok: load.cpu_pct < 10 };
  return out;
}

/** The result for people. */
export function formatRsvpBench(r: RsvpBenchResult): string {
  const s = (k: string) => { const x = r.spread[k]!; return `${x.median} (${x.min}-${x.max})`; };
  const t = (k: string) => { const x = r.targets[k]; return x ? `; target ${k.startsWith('router') ? '<' : '>='} ${x.limit}: ${x.ok ? 'ok' : 'MISSED'}` : ''; };
  const lines = [
    `a typical Path (${String(r.path_bytes)} bytes), medians of ${String(r.setup.rounds)} rounds (min-max):`,
    `  decoded ${s('decode_msgs_per_s')} messages/s${t('decode_msgs_per_s')}`,
    `  encoded ${s('encode_msgs_per_s')} messages/s${t('encode_msgs_per_s')}`,
  ];
  const load = r.router as RouterLoad | undefined;
  if (load) {
    const k = sessionsName(Number(r.setup.sessions));
    lines.push(`a router holding ${String(r.setup.sessions)} sessions refreshed every ${Number(r.setup.refresh_ms) / 1000} s (${load.held.psb} path and ${load.held.rsb} reservation states, ${load.held.reservations} reservations installed; set up in ${load.setup_s} s):`);
    lines.push(`  CPU ${load.cpu_pct} % of one core over ${Number(r.setup.window_ms) / 1000} s${t(`router_cpu_pct_${k}_sessions`)}; ${load.received} messages received and ${load.sent} sent, ${load.tc_changes} reservations changed; resident memory ${load.rss_mb} MB`);
  }
  return lines.join('\n');
}
