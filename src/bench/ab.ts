/* `qos bench ab`: two builds of the daemon, same policy, measured in alternating windows.
 * This VM's speed drifts by up to 1.5x over minutes, so two runs of `qos bench policy` an hour
 * apart cannot tell a 10 % change from noise; windows that alternate between the two daemons
 * (ABBA) and the median of their paired ratios can. Each window also reads each daemon's CPU
 * from /proc/PID/task/STAR/stat: per Socket+Connect pair, for its event loop (the main thread)
 * and for all its threads (script workers, V8's helpers). */

import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { QosError } from '../errors.js';
import { DaemonChild } from '../daemon/child.js';
import { statTicks } from '../script/cpu.js';
import { BENCH_BIN } from './agent.js';
import { medianF, runJson } from './helpers.js';

export interface AbOptions {
  /** qos CLI entry points (dist/cli/main.js) of the two builds */
  oldCli: string;
  newCli: string;
  /** policy files (their directories are copied: a script beside them comes along) */
  oldPolicy: string;
  newPolicy: string;
  rounds: number;
  loadMs: number;
  threads: number;
  /** more `qos daemon` options for each side (e.g. one build with and without --nice keep) */
  oldArgs?: string[];
  newArgs?: string[];
  progress?: (m: string) => void;
}

/** clients_us_per_pair: the load clients' CPU (daemon_load's 16 threads), from this process's
 * waited-for children's times: what the clients got while the daemon served them */
interface Side { decisions_per_s: number; main_us_per_pair: number; all_us_per_pair: number; clients_us_per_pair: number }
export interface AbResult {
  old: Side;
  new: Side;
  /** median over rounds of new/old decisions per second (each round measures both) */
  new_to_old_ratio: number;
  rounds: { old: Side; new: Side }[];
  setup: { threads: number; load_ms: number; rounds: number; old_cli: string; new_cli: string; old_policy: string; new_policy: string; old_args: string[]; new_args: string[] };
}

/** Clock ticks of a process: its main thread and all its threads. */
export function processTicks(pid: number): { main: number; all: number } {
  let main = 0, all = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try { stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'); } catch { continue; } // the thread ended
    const t = statTicks(stat);
    all += t;
    if (Number(tid) === pid) main += t;
  }
  return { main, all };
}

/** Clock ticks of this process's children that were waited for (cutime + cstime). */
function childTicks(): number {
  const f = readFileSync('/proc/self/stat', 'latin1');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(rest[13]) + Number(rest[14]); // fields 16 and 17 of proc(5), counted from the state (field 3)
}

/** Microseconds per clock tick (USER_HZ is 100 on Linux). */
const US_PER_TICK = 10_000;

export async function benchAb(o: AbOptions): Promise<AbResult> {
  const say = o.progress ?? (() => undefined);
  const dir = mkdtempSync(join(tmpdir(), 'qosd-bench-ab-'));
  const daemons: DaemonChild[] = [];
  const start = async (name: string, cli: string, policy: string, args: string[]) => {
    const d = join(dir, name);
    cpSync(dirname(policy), d, { recursive: true });
    const daemon = await new DaemonChild(d, readFileSync(policy, 'utf8'), args, [], cli).start();
    daemons.push(daemon);
    return daemon;
  };
  try {
    const sides = { old: await start('old', o.oldCli, o.oldPolicy, o.oldArgs ?? []), new: await start('new', o.newCli, o.newPolicy, o.newArgs ?? []) };
    const window = (d: DaemonChild, ms: number): Side => {
      const pid = d.proc.pid!;
      const t0 = processTicks(pid), c0 = childTicks();
      const l = runJson<{ decisions: number; decisions_per_s: number }>([join(BENCH_BIN, 'daemon_load'), d.socket, String(o.threads), String(ms)]);
      const t1 = processTicks(pid), c1 = childTicks();
      if (l.decisions === 0) throw new QosError('QOS_ERR_BENCH', `no decisions from the ${d === sides.old ? 'old' : 'new'} daemon`);
      const pairs = l.decisions / 2;
      return { decisions_per_s: l.decisions_per_s, main_us_per_pair: ((t1.main - t0.main) * US_PER_TICK) / pairs, all_us_per_pair: ((t1.all - t0.all) * US_PER_TICK) / pairs, clients_us_per_pair: ((c1 - c0) * US_PER_TICK) / pairs };
    };
    for (const d of [sides.old, sides.new]) window(d, 500); // warm up
    const rounds: { old: Side; new: Side }[] = [];
    for (let r = 0; r < o.rounds; r++) {
      say(`round ${r + 1}/${o.rounds}`);
      const order = r % 2 ? (['new', 'old'] as const) : (['old', 'new'] as const);
      const got = {} as { old: Side; new: Side };
      for (const k of order) got[k] = window(sides[k], o.loadMs);
      rounds.push(got);
    }
    const med = (k: 'old' | 'new'): Side => ({
      decisions_per_s: Math.round(medianF(rounds.map((x) => x[k].decisions_per_s))),
      main_us_per_pair: Math.round(medianF(rounds.map((x) => x[k].main_us_per_pair)) * 10) / 10,
      all_us_per_pair: Math.round(medianF(rounds.map((x) => x[k].all_us_per_pair)) * 10) / 10,
      clients_us_per_pair: Math.round(medianF(rounds.map((x) => x[k].clients_us_per_pair)) * 10) / 10,
    });
    return {
      old: med('old'), new: med('new'),
      new_to_old_ratio: Math.round(medianF(rounds.map((x) => x.new.decisions_per_s / x.old.decisions_per_s)) * 1000) / 1000,
      rounds,
      setup: { threads: o.threads, load_ms: o.loadMs, rounds: o.rounds, old_cli: o.oldCli, new_cli: o.newCli, old_policy: o.oldPolicy, new_policy: o.newPolicy, old_args: o.oldArgs ?? [], new_args: o.newArgs ?? [] },
    };
  } finally {
    await Promise.all(daemons.map((d) => d.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}
