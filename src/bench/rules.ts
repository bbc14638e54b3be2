/* `qos bench rules`: what kernel rules cost, measured on this machine with a real daemon in a
 * network namespace owning a real nftables table.
 *
 * - throughput_ratio_10k: iperf3 TCP from a client namespace to a server namespace, with the
 *   daemon's table holding N generated rules (rules-gen.ts: hosts and services, prefixes and
 *   port ranges covering some of them, per-user rules, IPv6; the flow falls through to the
 *   default rule, so it is classified against every layer and marked) divided by the same
 *   without any table. Each round runs both back to back, in alternating order; the figure is
 *   the median of the per-round ratios (the machine is noisy).
 * - apply_ms_10k: enabling the N-rule set when no table is there (what `qos rules enable` or
 *   a daemon start costs): the admin API request as the client sees it, median over rounds.
 *   The first import (parsing and checking the file too) is reported beside it.
 * - move_ms: moving one rule to another position (`qos rules move`), as the client sees it,
 *   median over moves; positions are random over the whole set, the same for a seed. */

import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { callJson } from '../daemon/admin-client.js';
import { DaemonChild } from '../daemon/child.js';
import { removeStale } from '../demo/net.js';
import { QosError } from '../errors.js';
import { installed, runSync, start, type Child } from '../exec.js';
import { DEFAULT_CT_MASK, hex32 } from '../kernel/ctmark.js';
import type { Target } from './agent.js';
import { medianF } from './helpers.js';
import { iperf, NamespacePair } from './netpair.js';
import { generateRules } from './rules-gen.js';

export interface RulesBenchOptions {
  rules: number;
  rounds: number;
  /** seconds of each iperf3 run */
  seconds: number;
  moves: number;
  seed: number;
  /** the daemon's --ct-mask (default: its default) */
  ctMask?: string;
  progress?: (m: string) => void;
}

export interface RulesBenchResult {
  throughput_ratio_10k: number;
  throughput_bps_without: number;
  throughput_bps_with: number;
  apply_ms_10k: number;
  apply_ms_10k_runs: number[];
  import_ms: number;
  move_ms: number;
  move_ms_max: number;
  /** packets the default rule (last) decided during the runs with rules: the flow was classified and marked */
  default_rule_packets: number;
  layers: Record<string, number>;
  targets: { throughput_ratio_10k: Target; apply_ms_10k: Target; move_ms: Target };
  setup: { rules: number; rounds: number; seconds: number; moves: number; seed: number; ct_mask: string; cpus: number; kernel: string; node: string };
}

const PREFIX = 'qosbr';
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

/** Why the benchmark cannot run here, or null. */
export function rulesBenchUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'qos bench rules needs root: it creates network namespaces and an nftables table';
  for (const [tool, pkg] of [['ip', 'iproute2'], ['nft', 'nftables'], ['iperf3', 'iperf3']] as const) {
    if (!installed(tool)) return `qos bench rules needs \`${tool}\` (apt-get install ${pkg})`;
  }
  return null;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

export async function benchRules(o: RulesBenchOptions): Promise<RulesBenchResult> {
  const why = rulesBenchUnavailable();
  if (why) throw new QosError('QOS_ERR_ENVIRONMENT', why);
  const say = o.progress ?? (() => undefined);
  removeStale(PREFIX);
  const dir = mkdtempSync(join(tmpdir(), 'qosd-bench-rules-'));
  const pair = new NamespacePair(PREFIX);
  let server: Child | undefined;
  let daemon: DaemonChild | undefined;
  try {
    const port = 5201;
    server = start(['iperf3', '-s', '-p', String(port), '--forceflush'], { netns: pair.server, name: 'iperf3 -s' });
    await server.until('listening', 10_000, 'stdout');

    daemon = await new DaemonChild(dir, 'rules: []\n', ['--kernel', 'on', ...(o.ctMask ? ['--ct-mask', o.ctMask] : [])], ['ip', 'netns', 'exec', pair.client]).start();
    const api = <T>(method: string, path: string, body?: unknown) => callJson<T>(daemon!.admin, method, path, body, 120_000);
    const text = JSON.stringify({ qosd_rules: 1, enabled: true, rules: generateRules(o.rules, o.seed) });
    say(`importing ${o.rules} generated rules`);
    const imported = await timed(() => api<{ layers: Record<string, number> }>('POST', '/v1/rules/import', { text, file: 'generated' }));

    const withBps: number[] = [], withoutBps: number[] = [], ratios: number[] = [], applies: number[] = [];
    await api('POST', '/v1/rules/disable');
    for (let r = 0; r < o.rounds; r++) {
      const order = r % 2 ? ['with', 'without'] : ['without', 'with'];
      const got: Record<string, number> = {};
      for (const side of order) {
        if (side === 'with') applies.push((await timed(() => api('POST', '/v1/rules/enable'))).ms);
        got[side] = iperf(pair, port, o.seconds);
        if (side === 'with') await api('POST', '/v1/rules/disable');
      }
      withBps.push(got.with!); withoutBps.push(got.without!); ratios.push(got.with! / got.without!);
      say(`round ${r + 1}/${o.rounds}: ${(got.without! / 1e9).toFixed(2)} Gb/s without, ${(got.with! / 1e9).toFixed(2)} Gb/s with ${o.rules} rules (apply ${applies.at(-1)!.toFixed(0)} ms)`);
    }

    // the default rule's packets: read while the set is in, after one more short run
    await api('POST', '/v1/rules/enable');
    iperf(pair, port, 1);
    const list = await api<{ rules: { packets: number }[] }>('GET', '/v1/rules');
    const defaultPackets = list.rules.at(-1)?.packets ?? 0;

    let seed = o.seed >>> 0;
    const next = (k: number) => { seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0; return 1 + (seed % k); };
    const moves: number[] = [];
    for (let i = 0; i < o.moves; i++) {
      const from = next(o.rules - 1); // the default rule stays last
      let to = next(o.rules - 1);
      if (to === from) to = (from % (o.rules - 1)) + 1;
      moves.push((await timed(() => api('POST', '/v1/rules/move', { from, to }))).ms);
    }
    if (moves.length) say(`${moves.length} moves: median ${medianF(moves).toFixed(0)} ms`);
    const status = await api<{ layers: Record<string, number> | null }>('GET', '/v1/rules/status');

    const ratio = round(medianF(ratios), 3), applyMs = round(medianF(applies)), moveMs = moves.length ? round(medianF(moves)) : 0;
    return {
      throughput_ratio_10k: ratio,
      throughput_bps_without: Math.round(medianF(withoutBps)),
      throughput_bps_with: Math.round(medianF(withBps)),
      apply_ms_10k: applyMs,
      apply_ms_10k_runs: applies.map((x) => round(x)),
      import_ms: round(imported.ms),
      move_ms: moveMs,
      move_ms_max: moves.length ? round(Math.max(...moves)) : 0,
      default_rule_packets: defaultPackets,
      layers: status.layers ?? imported.value.layers,
      targets: {
        throughput_ratio_10k: { value: ratio, limit: 0.9, ok: ratio >= 0.9 },
        apply_ms_10k: { value: applyMs, limit: 2000, ok: applyMs <= 2000 },
        move_ms: { value: moveMs, limit: 200, ok: moveMs <= 200 },
      },
      setup: { rules: o.rules, rounds: o.rounds, seconds: o.seconds, moves: o.moves, seed: o.seed, ct_mask: o.ctMask ?? hex32(DEFAULT_CT_MASK), cpus: cpus().length, kernel: runSync(['uname', '-r']).stdout.trim(), node: process.version },
    };
  } catch (e) {
    // what the daemon said is the likeliest explanation
    if (daemon && e instanceof Error) e.message += `\n--- the daemon's log (last lines) ---\n${daemon.log.trim().split('\n').slice(-8).join('\n')}`;
    throw e;
  } finally {
    await daemon?.stop().catch(() => undefined);
    server?.kill();
    pair.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The result for people: one line per figure, with its target. */
export function formatRulesBench(r: RulesBenchResult): string {
  const t = (x: Target) => (x.ok ? 'ok' : 'MISSED');
  return [
    `kernel rules: ${r.setup.rules} generated rules, connection-mark bits ${r.setup.ct_mask}, layers ${Object.entries(r.layers).map(([k, v]) => `${k}:${v}`).join(' ')}`,
    `throughput with/without  ${r.throughput_ratio_10k.toFixed(3)}  (${(r.throughput_bps_with / 1e9).toFixed(2)} vs ${(r.throughput_bps_without / 1e9).toFixed(2)} Gb/s, median of ${r.setup.rounds} rounds; target >= ${r.targets.throughput_ratio_10k.limit}: ${t(r.targets.throughput_ratio_10k)})`,
    `apply the set            ${r.apply_ms_10k} ms  (median of ${r.apply_ms_10k_runs.length}; first import with checks ${r.import_ms} ms; target <= ${r.targets.apply_ms_10k.limit}: ${t(r.targets.apply_ms_10k)})`,
    `move one rule            ${r.move_ms} ms  (median of ${r.setup.moves}, max ${r.move_ms_max}; target <= ${r.targets.move_ms.limit}: ${t(r.targets.move_ms)})`,
    `the default rule decided ${r.default_rule_packets} packets of the last run`,
  ].join('\n');
}
