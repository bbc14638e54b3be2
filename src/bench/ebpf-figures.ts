/* The figures of `qos bench ebpf` from what it measured (pure): the policy it loads, whether a
 * run's sockets carried the marks they should have, and each figure over the pairs of runs. */

import type { Target } from './agent.js';
import { spread, type Spread } from './tc-figures.js';

/** One side of a pair: the daemon with the eBPF programs attached (and the policy's maps
 * filled) or with --ebpf off. */
export interface SideRun {
  /** nanoseconds per connect+close of the static client */
  connect_ns: number;
  /** iperf3's received bits/s */
  bps: number;
  /** IP_TOS the static client read back (getsockopt) on a connect before and after its loop */
  connect_tos: number[];
  /** the DS field of iperf3's SYNs, captured on the server's side */
  syn_tos: number[];
  /** CPU the daemon used while the static client ran (ms, /proc: 10 ms ticks) */
  daemon_cpu_ms: number;
}

export interface PairRun { first: 'with' | 'without'; with: SideRun; without: SideRun }

/** A rule per executable file, in order: the benchmark's policy (YAML). */
export function exePolicy(rules: readonly { name: string; exe: string; dscp: string }[]): string {
  // JSON strings are YAML double-quoted scalars: any path is written as it is
  return `rules:\n${rules.map((r) => `  - name: ${JSON.stringify(r.name)}\n    match: { exe: ${JSON.stringify(r.exe)} }\n    action: { dscp: ${r.dscp} }\n`).join('')}`;
}

/** What is wrong with a run's marks, or null: with the programs, every socket looked at
 * carries its rule's TOS (tos: the static client's, iperf3's); without them, none carries any.
 * No SYN seen is wrong too: nothing would have been checked. */
export function markingProblem(side: 'with' | 'without', run: Pick<SideRun, 'connect_tos' | 'syn_tos'>, tos: { client: number; iperf: number }): string | null {
  const want = side === 'with' ? tos : { client: 0, iperf: 0 };
  const bad: string[] = [];
  if (!run.connect_tos.length || run.connect_tos.some((t) => t !== want.client)) bad.push(`the static client's sockets had IP_TOS [${run.connect_tos.join(', ')}], not ${want.client}`);
  if (run.syn_tos.length < 2) bad.push(`${run.syn_tos.length} iperf3 SYNs captured (its control and data connections make 2)`);
  else if (run.syn_tos.some((t) => t !== want.iperf)) bad.push(`iperf3's SYNs carried TOS [${run.syn_tos.join(', ')}], not ${want.iperf}`);
  return bad.length ? `${side} the eBPF programs: ${bad.join('; ')}` : null;
}

export interface EbpfFigures {
  /** per pair: with/without ns per connect+close */
  connect_ratio: Spread;
  /** per pair: with/without bits/s */
  throughput_ratio: Spread;
  connect_ns: { with: Spread; without: Spread };
  throughput_gbps: { with: Spread; without: Spread };
  daemon_cpu_ms_connect_run: { with: Spread; without: Spread };
  targets: { connect_ratio: Target; throughput_ratio: Target };
}

export const CONNECT_RATIO_LIMIT = 1.05, THROUGHPUT_RATIO_LIMIT = 0.98;

/** The figures over pairs: ratios within each pair (a drift of the machine's speed between
 * pairs cancels), their median with min and max, targets on the medians. */
export function ebpfFigures(pairs: readonly PairRun[]): EbpfFigures {
  if (!pairs.length) throw new Error('no pairs: no figures');
  const connect = spread(pairs.map((p) => p.with.connect_ns / p.without.connect_ns));
  const throughput = spread(pairs.map((p) => p.with.bps / p.without.bps));
  const side = (s: 'with' | 'without') => ({
    ns: spread(pairs.map((p) => p[s].connect_ns), 0),
    gbps: spread(pairs.map((p) => p[s].bps / 1e9), 2),
    cpu: spread(pairs.map((p) => p[s].daemon_cpu_ms), 0),
  });
  const w = side('with'), wo = side('without');
  return {
    connect_ratio: connect,
    throughput_ratio: throughput,
    connect_ns: { with: w.ns, without: wo.ns },
    throughput_gbps: { with: w.gbps, without: wo.gbps },
    daemon_cpu_ms_connect_run: { with: w.cpu, without: wo.cpu },
    targets: {
      connect_ratio: { value: connect.median, limit: CONNECT_RATIO_LIMIT, ok: connect.median <= CONNECT_RATIO_LIMIT },
      throughput_ratio: { value: throughput.median, limit: THROUGHPUT_RATIO_LIMIT, ok: throughput.median >= THROUGHPUT_RATIO_LIMIT },
    },
  };
}
