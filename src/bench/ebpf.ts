/* `qos bench ebpf`: what per-executable marking by the cgroup eBPF programs (docs/ebpf.md) costs
 * the programs it marks, measured with a real `qos daemon --ebpf on` attached to a cgroup of the
 * benchmark's own, its maps filled from a 1,000-rule policy (one exe rule per file: 998 copies
 * of /bin/true, the static client, iperf3).
 *
 * - connect_ratio: ns per socket+connect+close of a static C client (agent/bench/exe_connect.c,
 *   the agent cannot reach it) to a listener on 127.0.0.1 in the client namespace, in the
 *   cgroup the programs are attached to (its rule marks it), divided by the same in a sibling
 *   cgroup with nothing attached; one daemon runs throughout. Its CPU during each client run is
 *   reported beside it (it should be none: the programs record decided sockets in a map the
 *   daemon reads only when asked).
 * - throughput_ratio: iperf3 TCP from the client namespace to the server namespace, iperf3 in
 *   the cgroup and named by an exe rule (its connects are marked), the same way.
 * Each pair runs both sides back to back in alternating order (connect+close CONNECT_RUNS times
 * each and iperf3 IPERF_RUNS times each, by turns, a side's figure the median of its runs); a
 * figure is the median of the per-pair ratios with their min and max. Every side's marks are checked as it runs (the IP_TOS
 * the client reads back, the DS field of iperf3's SYNs captured on the server): a run whose
 * sockets were not marked with the programs, or were without them, stops the benchmark.
 * - reload_ms_1000_rules: from `POST /v1/reload` of the policy with a rule changed until
 *   `GET /v1/status` shows the next eBPF generation (the reload writes all 1,000 entries, then
 *   the generation); the request alone beside it. */

import { copyFileSync, mkdirSync, mkdtempSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LiveCapture } from '../capture/live.js';
import { callJson } from '../daemon/admin-client.js';
import { DaemonChild } from '../daemon/child.js';
import { removeStale } from '../demo/net.js';
import { QosError } from '../errors.js';
import { installed, runSync, start, whereIs, type Child } from '../exec.js';
import { dscpValue } from '../policy/dscp.js';
import { packageOf } from '../prerequisites.js';
import { cpuMs } from '../script/cpu.js';
import { BENCH_BIN } from './agent.js';
import { BenchCgroup, removeStaleCgroups } from './cgroup.js';
import { ebpfFigures, exePolicy, markingProblem, type EbpfFigures, type PairRun, type SideRun } from './ebpf-figures.js';
import { closeOnSignal, runJson } from './helpers.js';
import { iperfAsync, NamespacePair } from './netpair.js';
import { spread, type Spread } from './tc-figures.js';

export interface EbpfBenchOptions {
  pairs: number;
  /** timed connect+close of each client run */
  connects: number;
  /** length of each iperf3 run */
  seconds: number;
  reloads: number;
  /** the daemon's per-application counting (docs/apps.md): off measures marking alone */
  stats: 'on' | 'off';
  progress?: (m: string) => void;
}

export interface EbpfBenchResult extends EbpfFigures {
  bench: 'ebpf';
  reload_ms_1000_rules: Spread & { measures: string };
  /** the POST /v1/reload request alone */
  reload_request_ms: Spread;
  /** every run's sockets were looked at: with the programs each carried its rule's mark, without them none */
  marked_ok: true;
  marking: { client_tos: number; iperf3_tos: number; checked: string; after_reloads: { dscp: string; client_tos: number[] } };
  pairs: PairRun[];
  setup: {
    rules: number; exe_files: number; stats: 'on' | 'off'; pairs: number; connects: number; connect_runs_per_side: number; iperf3_runs_per_side: number; seconds: number; reloads: number; cgroup: string; cgroup_without: string;
    cpus: number; kernel: string; node: string; loadavg_before: number[]; loadavg_after: number[]; note: string;
  };
}

const PREFIX = 'qosbe';
const RULES = 1000;
const LISTEN_PORT = 5301, IPERF_PORT = 5201;
const CLIENT_DSCP = 'EF', RELOAD_DSCP = 'CS5', IPERF_DSCP = 'AF41';
const FILLER = '/bin/true';
/** after the daemon starts, before the first run: its start-up work done */
const SETTLE_MS = 1000;
/** connect+close and iperf3 runs of each side in a pair (see connectSides, runPair) */
const CONNECT_RUNS = 5, IPERF_RUNS = 3;
const tosOf = (dscp: string) => dscpValue(dscp)! << 2;
const round = (x: number) => Math.round(x * 10) / 10;

interface EbpfStatus { attached: boolean; problem: string | null; generation: number; rules: string[]; files: string[]; notes: string[] }

/** Why the benchmark cannot run here, or null. */
export function ebpfBenchUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'qos bench ebpf needs root: it attaches eBPF programs to a cgroup and creates network namespaces';
  for (const tool of ['ip', 'iperf3', 'tcpdump']) if (!installed(tool)) return `qos bench ebpf needs \`${tool}\` (apt-get install ${packageOf(tool)})`;
  for (const f of ['exe_connect', 'connect_close']) if (!installed(join(BENCH_BIN, f))) return `${join(BENCH_BIN, f)} is missing: run \`npm run build\` (agent/Makefile builds it; exe_connect is linked statically: glibc's static libraries, Debian libc6-dev)`;
  return null;
}

export async function benchEbpf(o: EbpfBenchOptions): Promise<EbpfBenchResult> {
  const why = ebpfBenchUnavailable();
  if (why) throw new QosError('QOS_ERR_ENVIRONMENT', why);
  const say = o.progress ?? (() => undefined);
  removeStale(PREFIX);
  await removeStaleCgroups();
  const loadBefore = loadavg().map((x) => Math.round(x * 100) / 100);
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'qosd-bench-ebpf-')));
  let pair: NamespacePair | undefined, daemon: DaemonChild | undefined, capture: LiveCapture | undefined;
  const cgroups: BenchCgroup[] = [];
  const procs: Child[] = [];
  let closing: Promise<void> | null = null;
  /** Removes everything the run made: at its end, on error, and on SIGINT or SIGTERM. */
  const close = () => (closing ??= (async () => {
    capture?.kill();
    await (daemon as DaemonChild | undefined)?.stop().catch(() => undefined);
    for (const c of procs) c.kill();
    for (const c of cgroups) await c.destroy().catch(() => undefined);
    pair?.destroy();
    rmSync(dir, { recursive: true, force: true });
  })());
  const stopListening = closeOnSignal('ebpf', 'its daemon, cgroup, namespaces and temporary files', close);
  try {
    pair = new NamespacePair(PREFIX);
    // the programs attach to one; the other, beside it, has none: the same client, by turns
    const cg = new BenchCgroup('with');
    cgroups.push(cg);
    const bare = new BenchCgroup('without');
    cgroups.push(bare);
    const p = pair;
    const cgOf = (side: 'with' | 'without') => (side === 'with' ? cg : bare);
    // the policy: a rule per file, each file another executable (a copy, not a link: its own inode)
    const client = realpathSync(join(BENCH_BIN, 'exe_connect'));
    const iperf3 = realpathSync(whereIs('iperf3')!);
    mkdirSync(join(dir, 'exe'));
    mkdirSync(join(dir, 'daemon'));
    const others = Array.from({ length: RULES - 2 }, (_, i) => {
      const f = join(dir, 'exe', `prog-${i + 1}`);
      copyFileSync(FILLER, f);
      return { name: `other-${i + 1}`, exe: f, dscp: ['AF11', 'AF21', 'AF31', 'CS1'][i % 4]! };
    });
    const policy = (clientDscp: string) => exePolicy([...others, { name: 'bench-client', exe: client, dscp: clientDscp }, { name: 'bench-iperf3', exe: iperf3, dscp: IPERF_DSCP }]);
    const tos = { client: tosOf(CLIENT_DSCP), iperf: tosOf(IPERF_DSCP) };

    const listener = start([join(BENCH_BIN, 'connect_close'), 'serve', String(LISTEN_PORT)], { netns: p.client, name: 'connect_close serve', code: 'QOS_ERR_BENCH' });
    procs.push(listener);
    await listener.until('ready', 10_000, 'stdout');
    const server = start(['iperf3', '-s', '-p', String(IPERF_PORT), '--forceflush'], { netns: p.server, name: 'iperf3 -s' });
    procs.push(server);
    await server.until('listening', 10_000, 'stdout');

    const status = async () => (await callJson<{ ebpf: EbpfStatus }>(daemon!.admin, 'GET', '/v1/status', undefined, 30_000)).ebpf;
    const startDaemon = async (text: string) => {
      daemon = await new DaemonChild(join(dir, 'daemon'), text, ['--ebpf', 'on', '--ebpf-cgroup', cg.dir, '--kernel', 'off', '--tc', 'off', '--stats', o.stats]).start();
      const s = await status();
      if (!s.attached || s.rules.length !== RULES || s.files.length !== RULES) {
        throw new QosError('QOS_ERR_BENCH', `the daemon's eBPF programs: attached ${s.attached}${s.problem ? ` (${s.problem})` : ''}, ${s.rules.length} exe rules and ${s.files.length} files in the maps, not ${RULES}${s.notes.length ? `: ${s.notes.slice(0, 3).join('; ')}` : ''}`);
      }
    };
    const connectRun = (side: 'with' | 'without', n: number) => runJson<{ elapsed_ns: number; connects: number; failed: number; tos: number[] }>(cgOf(side).run(p.client, [client, '127.0.0.1', String(LISTEN_PORT), String(n)]), process.env, 300_000);

    // a pair's connect+close: CONNECT_RUNS runs of each side by turns (a run is a fraction of a
    // second: one alone is at the mercy of a moment's load), each side its median run; the
    // daemon's CPU summed over its side's runs
    const daemonCpu = () => cpuMs(`/proc/${daemon!.proc.pid}/stat`) ?? NaN;
    const connectSides = (order: readonly ('with' | 'without')[]) => {
      const got = { with: { ns: [] as number[], tos: [] as number[], cpu: 0 }, without: { ns: [] as number[], tos: [] as number[], cpu: 0 } };
      for (let k = 0; k < CONNECT_RUNS; k++) for (const side of order) {
        const cpu0 = daemonCpu();
        const c = connectRun(side, o.connects);
        got[side].cpu += daemonCpu() - cpu0;
        got[side].ns.push(c.elapsed_ns / c.connects);
        // every run's marks: the first connect's and the last's, once for the side
        if (!got[side].tos.length || c.tos.some((t) => t !== got[side].tos[0])) got[side].tos = [...c.tos];
      }
      return got;
    };
    const iperfSide = async (side: 'with' | 'without') => {
      const syn: number[] = [];
      capture = await new LiveCapture({ iface: p.serverDev, netns: p.server, filter: `tcp dst port ${IPERF_PORT} and tcp[tcpflags] & tcp-syn != 0` }, (pk) => syn.push(pk.tos)).start();
      const bps = await iperfAsync(p, IPERF_PORT, o.seconds, p.serverIp, (argv) => cgOf(side).run(p.client, argv));
      await capture.stop();
      capture = undefined;
      return { bps, syn };
    };
    const runPair = async (first: 'with' | 'without'): Promise<PairRun> => {
      const order = first === 'with' ? ['with', 'without'] as const : ['without', 'with'] as const;
      const c = connectSides(order);
      // iperf3 likewise: IPERF_RUNS runs a side by turns, the side's figure their median
      const it = { with: { bps: [] as number[], syn: [] as number[] }, without: { bps: [] as number[], syn: [] as number[] } };
      for (let k = 0; k < IPERF_RUNS; k++) for (const side of order) {
        const i = await iperfSide(side);
        it[side].bps.push(i.bps);
        it[side].syn.push(...i.syn);
      }
      const out: Partial<Record<'with' | 'without', SideRun>> = {};
      for (const side of order) {
        const run: SideRun = { connect_ns: spread(c[side].ns, 1).median, bps: spread(it[side].bps, 0).median, connect_tos: c[side].tos, syn_tos: it[side].syn, daemon_cpu_ms: c[side].cpu };
        const problem = markingProblem(side, run, tos);
        if (problem) throw new QosError('QOS_ERR_BENCH', `not measuring what it should: ${problem}`);
        out[side] = run;
      }
      return { first, with: out.with!, without: out.without! };
    };

    await startDaemon(policy(CLIENT_DSCP));
    await sleep(SETTLE_MS);
    // a warm-up, not recorded: the first side of the first pair would otherwise start cold
    for (const side of ['with', 'without'] as const) {
      connectRun(side, o.connects);
      await iperfAsync(p, IPERF_PORT, 1, p.serverIp, (argv) => cgOf(side).run(p.client, argv));
    }

    const pairs: PairRun[] = [];
    for (let i = 0; i < o.pairs; i++) {
      const first = i % 2 ? 'with' : 'without';
      const r = await runPair(first);
      pairs.push(r);
      say(`pair ${i + 1}/${o.pairs}: connect+close ${r.with.connect_ns.toFixed(0)} ns with, ${r.without.connect_ns.toFixed(0)} ns without; iperf3 ${(r.with.bps / 1e9).toFixed(2)} vs ${(r.without.bps / 1e9).toFixed(2)} Gb/s`);
    }

    // reloads: the client's rule changes class each time, so each is a new policy
    const toGen: number[] = [], request: number[] = [];
    let dscp = CLIENT_DSCP;
    for (let i = 0; i < o.reloads; i++) {
      dscp = dscp === CLIENT_DSCP ? RELOAD_DSCP : CLIENT_DSCP;
      const d = daemon!;
      const before = (await status()).generation;
      // written whole, then renamed: the daemon's file watcher never reads half a file
      writeFileSync(`${d.policyFile}.new`, policy(dscp));
      renameSync(`${d.policyFile}.new`, d.policyFile);
      const t0 = performance.now();
      const res = await callJson<{ ok: boolean; error?: { message: string } }>(d.admin, 'POST', '/v1/reload', undefined, 60_000);
      const t1 = performance.now();
      if (!res.ok) throw new QosError('QOS_ERR_BENCH', `the reload was refused: ${res.error?.message ?? 'no reason given'}`);
      for (let k = 0; (await status()).generation === before; k++) {
        if (k > 1000) throw new QosError('QOS_ERR_BENCH', `the eBPF generation stayed ${before} after a reload`);
        await sleep(1);
      }
      toGen.push(performance.now() - t0);
      request.push(t1 - t0);
      // the watcher sees the rename and reads the file again 200 ms later (the running text:
      // nothing changes); let that pass before the next reload
      await sleep(1000);
    }
    const after = connectRun('with', 10).tos;
    if (after.some((t) => t !== tosOf(dscp))) throw new QosError('QOS_ERR_BENCH', `after ${o.reloads} reloads the client's sockets had IP_TOS [${after.join(', ')}], not ${tosOf(dscp)} (${dscp})`);
    say(`${o.reloads} reloads of ${RULES} rules: ${toGen.map((x) => x.toFixed(0)).join(' ')} ms`);
    await daemon!.stop();
    daemon = undefined;

    return {
      bench: 'ebpf',
      ...ebpfFigures(pairs),
      reload_ms_1000_rules: { ...spread(toGen, 1), measures: 'POST /v1/reload of the policy with one rule changed until GET /v1/status shows the next ebpf.generation (the reload request writes all entries of the maps, then the generation)' },
      reload_request_ms: spread(request, 1),
      marked_ok: true,
      marking: {
        client_tos: tos.client, iperf3_tos: tos.iperf,
        checked: 'every run: IP_TOS read back (getsockopt) by the static client on a connect before and after its timed loop, and the DS field of iperf3\'s SYNs captured on the server\'s side; with the programs each had its rule\'s TOS, without them 0',
        after_reloads: { dscp, client_tos: after },
      },
      pairs: pairs.map((r) => ({ ...r, with: { ...r.with, connect_ns: round(r.with.connect_ns) }, without: { ...r.without, connect_ns: round(r.without.connect_ns) } })),
      setup: {
        rules: RULES, exe_files: RULES, stats: o.stats, pairs: o.pairs, connects: o.connects, connect_runs_per_side: CONNECT_RUNS, iperf3_runs_per_side: IPERF_RUNS, seconds: o.seconds, reloads: o.reloads, cgroup: cg.dir, cgroup_without: bare.dir,
        cpus: cpus().length, kernel: runSync(['uname', '-r']).stdout.trim(), node: process.version, loadavg_before: loadBefore, loadavg_after: loadavg().map((x) => Math.round(x * 100) / 100),
        note: `one machine: the clients, the listener, iperf3's server and the daemon share its ${cpus().length} CPUs; the connect+close runs are to 127.0.0.1 inside the client namespace, iperf3 over a veth pair; one daemon runs throughout, its programs attached to the cgroup "with"; "without" is the same client in a sibling cgroup with nothing attached`,
      },
    };
  } catch (e) {
    if (daemon && e instanceof Error) e.message += `\n--- the daemon's log (last lines) ---\n${(daemon as DaemonChild).log.trim().split('\n').slice(-8).join('\n')}`;
    throw e;
  } finally {
    stopListening();
    await close();
  }
}

/** The result for people: a line per figure, with its target. */
export function formatEbpfBench(r: EbpfBenchResult): string {
  const t = (ok: boolean) => (ok ? 'ok' : 'MISSED');
  const s = (x: Spread, unit = '') => `${x.median}${unit} (${x.min}-${x.max})`;
  return [
    `eBPF marking by executable: ${r.setup.rules} exe rules in the maps, ${r.setup.pairs} pairs with/without in alternating order, medians (min-max); marks checked on every run`,
    `connect+close with/without  ${s(r.connect_ratio)}  ${s(r.connect_ns.with, ' ns')} vs ${s(r.connect_ns.without, ' ns')}; target <= ${r.targets.connect_ratio.limit}: ${t(r.targets.connect_ratio.ok)}`,
    `iperf3 with/without         ${s(r.throughput_ratio)}  ${s(r.throughput_gbps.with, ' Gb/s')} vs ${s(r.throughput_gbps.without, ' Gb/s')}; target >= ${r.targets.throughput_ratio.limit}: ${t(r.targets.throughput_ratio.ok)}`,
    `daemon CPU per client run   ${s(r.daemon_cpu_ms_connect_run.with, ' ms')} with, ${s(r.daemon_cpu_ms_connect_run.without, ' ms')} without`,
    `reload of ${r.setup.rules} rules          ${s(r.reload_ms_1000_rules, ' ms')} to the next generation in the status; the request ${s(r.reload_request_ms, ' ms')}`,
  ].join('\n');
}
