/* `qos bench stats`: what per-application statistics and limits (docs/apps.md) cost and how
 * exact they are, with a real `qos daemon --ebpf on` in the client namespace of a namespace pair,
 * its programs attached to a cgroup of the benchmark's own.
 *
 * - throughput_ratio_with_stats: iperf3 TCP to the server namespace run in that cgroup (every
 *   packet counted by the cgroup_skb programs) divided by the same in a sibling cgroup with
 *   nothing attached. Each pair runs both sides back to back in alternating order, each side
 *   RUNS iperf3 runs by turns (its figure their median); the figure is the median of the pairs'
 *   ratios, with min and max. The counting is checked: iperf3's bytes are in GET /v1/apps.
 * - explain_ms_p50: `POST /v1/explain` of a process's sockets (the daemon walks the policy and
 *   reads the kernel's marks), from request to answer, over EXPLAINS calls.
 * - limit_accuracy_pct: an iperf3 upload and a download over four sockets by a program under a
 *   limit (egress and ingress, by turns), its payload at the receiver against what the limit
 *   gives a TCP payload (HTB counts frames: MSS of every MSS + 66 bytes), in percent (0 exact). */

import { copyFileSync, mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { call, callJson } from '../daemon/admin-client.js';
import { DaemonChild } from '../daemon/child.js';
import { removeStale } from '../demo/net.js';
import { QosError } from '../errors.js';
import { installed, run, start, whereIs, type Child } from '../exec.js';
import { packageOf } from '../prerequisites.js';
import type { Target } from './agent.js';
import { BenchCgroup, removeStaleCgroups } from './cgroup.js';
import { closeOnSignal, medianF } from './helpers.js';
import { NamespacePair } from './netpair.js';
import { spread, type Spread } from './tc-figures.js';

export interface StatsBenchOptions {
  pairs: number;
  /** length of each iperf3 run of the throughput pairs */
  seconds: number;
  /** limited uploads and downloads, each */
  limitRuns: number;
  explains: number;
  progress?: (m: string) => void;
}

export interface StatsBenchResult {
  bench: 'stats';
  throughput_ratio_with_stats: Spread;
  throughput_mbps: { with_stats: Spread; without: Spread };
  explain_ms_p50: number;
  explain_ms: Spread;
  limit_accuracy_pct: { egress: Spread; ingress: Spread; limit_mbps: number; measures: string };
  /** iperf3's bytes were counted in its row of GET /v1/apps */
  counted_ok: true;
  pairs: { first: 'with' | 'without'; with_mbps: number; without_mbps: number; ratio: number }[];
  targets: { throughput_ratio_with_stats: Target; explain_ms_p50: Target; limit_accuracy_egress: Target; limit_accuracy_ingress: Target };
  setup: { pairs: number; runs_per_side: number; seconds: number; limit_runs: number; explains: number; cpus: number; kernel: string; node: string; loadavg_before: number[]; loadavg_after: number[] };
}

const PREFIX = 'qosbs';
const PERF = 5401, PERF_LIMITED = 5402;
const RUNS = 3;
const LIMIT_BITS = 10e6;
const SETTLE_MS = 1000;

export function statsBenchUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'qos bench stats needs root: it attaches eBPF programs to a cgroup and creates network namespaces';
  for (const tool of ['ip', 'iperf3', 'nsenter']) if (!installed(tool)) return `qos bench stats needs \`${tool}\` (apt-get install ${packageOf(tool)})`;
  return null;
}

interface IperfJson { error?: string; start?: { tcp_mss_default?: number }; end?: { sum_received?: { bits_per_second?: number } } }

async function iperf(argv: string[]): Promise<{ bps: number; mss: number }> {
  const r = await run(argv, { timeoutMs: 120_000, ok: 'any' });
  let j: IperfJson;
  try { j = JSON.parse(r.stdout) as IperfJson; } catch { throw new QosError('QOS_ERR_BENCH', `iperf3 failed: ${(r.stderr || r.stdout).trim().slice(0, 300)}`); }
  const bps = j.end?.sum_received?.bits_per_second;
  if (!bps) throw new QosError('QOS_ERR_BENCH', `iperf3 failed: ${j.error ?? 'no result'}`);
  return { bps, mss: j.start?.tcp_mss_default ?? 1448 };
}

export async function benchStats(o: StatsBenchOptions): Promise<StatsBenchResult> {
  const why = statsBenchUnavailable();
  if (why) throw new QosError('QOS_ERR_ENVIRONMENT', why);
  const say = o.progress ?? (() => undefined);
  removeStale(PREFIX);
  await removeStaleCgroups();
  const loadBefore = loadavg().map((x) => Math.round(x * 100) / 100);
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'qosd-bench-stats-')));
  let pair: NamespacePair | undefined, daemon: DaemonChild | undefined;
  const cgroups: BenchCgroup[] = [];
  const procs: Child[] = [];
  let closing: Promise<void> | null = null;
  const close = () => (closing ??= (async () => {
    await daemon?.stop().catch(() => undefined);
    for (const c of procs) c.kill();
    for (const c of cgroups) await c.destroy().catch(() => undefined);
    pair?.destroy();
    rmSync(dir, { recursive: true, force: true });
  })());
  const stopListening = closeOnSignal('stats', 'its daemon, cgroups, namespaces and temporary files', close);
  try {
    pair = new NamespacePair(PREFIX);
    const p = pair;
    const cg = new BenchCgroup('with');
    cgroups.push(cg);
    const bare = new BenchCgroup('without');
    cgroups.push(bare);
    const iperf3 = realpathSync(whereIs('iperf3')!);
    const limited = join(dir, 'iperf3-limited');
    copyFileSync(iperf3, limited); // another file: another program, the one the limit names
    mkdirSync(join(dir, 'daemon'));
    const policy = `rules:\n  - name: limited\n    match: { exe: ${limited} }\n    action: { limit: { egress: ${LIMIT_BITS / 1e6}Mbit, ingress: ${LIMIT_BITS / 1e6}Mbit } }\n`;
    for (const port of [PERF, PERF_LIMITED]) {
      const s = start(['ip', 'netns', 'exec', p.server, 'iperf3', '-s', '-p', String(port)], { name: 'iperf3 -s' });
      procs.push(s);
    }
    daemon = await new DaemonChild(join(dir, 'daemon'), policy, ['--ebpf', 'on', '--ebpf-cgroup', cg.dir, '--kernel', 'off', '--tc', 'off', '--nft-table', `${PREFIX}${process.pid}`],
      ['nsenter', `--net=/run/netns/${p.client}`]).start();
    const admin = daemon.admin;
    await sleep(SETTLE_MS);
    const inCg = (side: 'with' | 'without', argv: string[]) => (side === 'with' ? cg : bare).run(p.client, argv);

    // throughput, counting on and off by turns
    const pairs: StatsBenchResult['pairs'] = [];
    for (let i = 0; i < o.pairs; i++) {
      const first = i % 2 === 0 ? 'with' as const : 'without' as const;
      const runs: Record<'with' | 'without', number[]> = { with: [], without: [] };
      for (let k = 0; k < RUNS; k++) for (const side of first === 'with' ? ['with', 'without'] as const : ['without', 'with'] as const) {
        runs[side].push((await iperf(inCg(side, ['iperf3', '-c', p.serverIp, '-p', String(PERF), '-t', String(o.seconds), '-J']))).bps);
      }
      const w = medianF(runs.with) / 1e6, wo = medianF(runs.without) / 1e6;
      pairs.push({ first, with_mbps: Math.round(w), without_mbps: Math.round(wo), ratio: Math.round((w / wo) * 1000) / 1000 });
      say(`pair ${i + 1}/${o.pairs}: ${Math.round(w)} Mbit/s counted, ${Math.round(wo)} not: ${(w / wo).toFixed(3)}`);
    }
    const apps = await callJson<{ rows: { name: string; tx_bytes: number }[] }>(admin, 'GET', '/v1/apps');
    if (!((apps.rows.find((r) => r.name === iperf3)?.tx_bytes ?? 0) > 0)) throw new QosError('QOS_ERR_BENCH', `iperf3's bytes were not counted: ${apps.rows.map((r) => r.name).join(', ')}`);

    // explain: a process holding a socket, its answer timed
    const holder = start(inCg('with', [limited, '-c', p.serverIp, '-p', String(PERF_LIMITED), '-t', '30', '-b', '100k']), { name: 'iperf3 (held)' });
    procs.push(holder);
    await sleep(1000);
    const pid = Number((await run(['pgrep', '-f', '-n', `^${limited} -c`], { ok: 'any' })).stdout.trim());
    if (!pid) throw new QosError('QOS_ERR_BENCH', 'the held iperf3 did not start');
    const explainMs: number[] = [];
    for (let i = 0; i < o.explains; i++) {
      const t0 = performance.now();
      const r = await call(admin, 'POST', '/v1/explain', 10_000, { pid });
      if (r.status !== 200) throw new QosError('QOS_ERR_BENCH', `POST /v1/explain answered ${r.status}: ${r.body.slice(0, 300)}`);
      explainMs.push(performance.now() - t0);
    }
    holder.kill();
    await sleep(500);

    // limit accuracy, up and down by turns
    const acc: Record<'egress' | 'ingress', number[]> = { egress: [], ingress: [] };
    for (let i = 0; i < o.limitRuns; i++) for (const dirn of ['egress', 'ingress'] as const) {
      const r = await iperf(inCg('with', [limited, '-c', p.serverIp, '-p', String(PERF_LIMITED), '-t', '5', '-O', '1', '-P', '4', ...(dirn === 'ingress' ? ['-R'] : []), '-J']));
      const want = LIMIT_BITS * r.mss / (r.mss + 66);
      acc[dirn].push(Math.round((r.bps / want - 1) * 1000) / 10);
      say(`limit ${dirn} ${i + 1}/${o.limitRuns}: ${(r.bps / 1e6).toFixed(2)} Mbit/s of payload, ${(want / 1e6).toFixed(2)} expected`);
    }
    const ratio = spread(pairs.map((x) => x.ratio));
    const expl = spread(explainMs, 2);
    const eg = spread(acc.egress, 1), ing = spread(acc.ingress, 1);
    return {
      bench: 'stats',
      throughput_ratio_with_stats: ratio,
      throughput_mbps: { with_stats: spread(pairs.map((x) => x.with_mbps), 0), without: spread(pairs.map((x) => x.without_mbps), 0) },
      explain_ms_p50: expl.median, explain_ms: expl,
      limit_accuracy_pct: { egress: eg, ingress: ing, limit_mbps: LIMIT_BITS / 1e6, measures: 'iperf3 -P 4 (5 s, the first omitted) payload at the receiver against limit × MSS / (MSS + 66)' },
      counted_ok: true,
      pairs,
      targets: {
        throughput_ratio_with_stats: { value: ratio.median, limit: 0.97, ok: ratio.median >= 0.97 },
        explain_ms_p50: { value: expl.median, limit: 20, ok: expl.median <= 20 },
        limit_accuracy_egress: { value: eg.median, limit: 5, ok: Math.abs(eg.median) <= 5 },
        limit_accuracy_ingress: { value: ing.median, limit: 5, ok: Math.abs(ing.median) <= 5 },
      },
      setup: { pairs: o.pairs, runs_per_side: RUNS, seconds: o.seconds, limit_runs: o.limitRuns, explains: o.explains, cpus: cpus().length, kernel: (await run(['uname', '-r'])).stdout.trim(), node: process.version, loadavg_before: loadBefore, loadavg_after: loadavg().map((x) => Math.round(x * 100) / 100) },
    };
  } finally {
    stopListening();
    await close();
  }
}

export function formatStatsBench(r: StatsBenchResult): string {
  const s = (x: Spread, u = '') => `${x.median}${u} (${x.min}–${x.max})`;
  const t = (x: Target) => (x.ok ? 'ok' : 'MISSED');
  return [
    `throughput with per-application counting / without: ${s(r.throughput_ratio_with_stats)}  [target >= ${r.targets.throughput_ratio_with_stats.limit}: ${t(r.targets.throughput_ratio_with_stats)}]`,
    `  iperf3: ${s(r.throughput_mbps.with_stats, ' Mbit/s')} counted, ${s(r.throughput_mbps.without, ' Mbit/s')} not`,
    `explain through the daemon: ${s(r.explain_ms, ' ms')}  [target p50 <= ${r.targets.explain_ms_p50.limit} ms: ${t(r.targets.explain_ms_p50)}]`,
    `limit of ${r.limit_accuracy_pct.limit_mbps} Mbit/s, error: egress ${s(r.limit_accuracy_pct.egress, ' %')}, ingress ${s(r.limit_accuracy_pct.ingress, ' %')}  [target within 5 %: ${t(r.targets.limit_accuracy_egress)}, ${t(r.targets.limit_accuracy_ingress)}]`,
    `  (${r.limit_accuracy_pct.measures})`,
    `setup: ${r.setup.pairs} pairs of ${r.setup.runs_per_side} × ${r.setup.seconds} s a side, ${r.setup.limit_runs} limited runs each way, ${r.setup.explains} explains; ${r.setup.cpus} CPUs, kernel ${r.setup.kernel}, load ${r.setup.loadavg_before.join(' ')} → ${r.setup.loadavg_after.join(' ')}`,
  ].join('\n');
}
