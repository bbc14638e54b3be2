/* `qos bench tc`: what host traffic control (src/tc/) costs and how well it shapes, measured on
 * this machine with a real daemon in a network namespace owning the client's side of a veth
 * pair (docs/traffic-control.md, "Benchmark").
 *
 * - create_N_flows_ms, delete_N_flows_ms: N flows, each with one exact 5-tuple UDP filter (what
 *   a per-socket filter is), made through the admin API as a client sees it: requests in
 *   flight at once (--in-flight), each flow's filter sent as soon as its flow is answered; the
 *   daemon gathers a burst into one tc batch and one nft transaction. Then deleted the same way.
 * - throughput_ratio_N_flows: iperf3 TCP (client -> server) of traffic no filter matches on a
 *   link holding the N flows and filters, divided by the same on a second link between the
 *   same namespaces under the daemon's traffic control with no flow (its HTB and table,
 *   empty): what the flows and filters cost the traffic beside them. Both links are given a
 *   link rate far above what a veth carries, so HTB's rate limits neither. A third link has
 *   no qdisc at all (the veth's noqueue): _vs_bare, for information, includes what any HTB
 *   costs. In each turn iperf3 runs on the three links at once, each to its own server, so
 *   all three meet the same load of the machine (a shared machine's speed swings several-fold
 *   within seconds: runs one after another compare moments, not links); the set goes on the
 *   first link in even rounds and on the second in odd ones. Each turn gives one ratio;
 *   figures are medians of all turns, with min and max in `spread`, and every turn's ratio
 *   in `rounds`.
 * - shape_accuracy_pct: a 5 Mb/s constant-bit-rate UDP sender through a flow of TokenRate
 *   1 Mbit, MinimumPolicedSize = its payload, service Guaranteed (shape mode); the payload
 *   rate measured from the server's capture over the middle 60 % of the arrivals, as
 *   (rate / 1 Mb/s - 1) x 100, median of rounds.
 * - relink_ms: a fourth link with one flow and an IPv4 and an IPv6 filter is deleted and made
 *   again with its name (--relinks times): from just before `ip link add` to the daemon's log
 *   line saying its traffic control is installed again (logged once the kernel has applied
 *   it; timed from the log, so that no polling loads the machine meanwhile), each time
 *   checked in the kernel (root qdisc, the flow's class, the lookups naming the link).
 *   Median, min and max. */

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { callJson } from '../daemon/admin-client.js';
import { DaemonChild } from '../daemon/child.js';
import { removeStale } from '../demo/net.js';
import { QosError } from '../errors.js';
import { installed, runSync, start, type Child } from '../exec.js';
import { packageOf } from '../prerequisites.js';
import type { Target } from './agent.js';
import { iperfAsync, NamespacePair } from './netpair.js';
import { errorPct, exactFilter, loggedAt, spread, steadyRate, type Condition, type Spread } from './tc-figures.js';
import { GONE_MSG, RESTORED_MSG } from '../tc/links.js';
import { CBR_PAYLOAD, CBR_PROGRAM } from '../tc/cbr.js';

export interface TcBenchOptions {
  /** the two sizes of the flow set */
  flowsSmall: number;
  flowsLarge: number;
  rounds: number;
  /** turns of the three links (the set's, the empty one, no qdisc) per set and round */
  turns: number;
  /** seconds of each iperf3 run and of each shaping run */
  seconds: number;
  /** requests in flight at once while creating or deleting */
  inFlight: number;
  /** times the relink link is deleted and made again */
  relinks: number;
  progress?: (m: string) => void;
}

export interface TcBenchResult {
  /** create_N_flows_ms, delete_N_flows_ms, throughput_ratio_N_flows, throughput_ratio_N_flows_vs_bare for both sizes */
  [figure: string]: unknown;
  shape_accuracy_pct: number;
  /** payload Mb/s the shaped flow arrived at, median of rounds */
  shape_mbps: number;
  /** median iperf3 bits/s of each condition */
  throughput_bps: Record<Condition, number>;
  /** each figure's median, min and max over the rounds */
  spread: Record<string, Spread>;
  /** what the kernel held with each set in (first round): HTB classes of flows, exact-map elements */
  installed: Record<string, { classes: number; exact_filters: number }>;
  targets: Record<string, Target>;
  /** each round and set: the link the flows were on, each turn's ratio and Gb/s */
  rounds: { round: number; flows: number; link: string; ratios: number[]; gbps: Record<'flows' | 'zero' | 'bare', number[]> }[];
  /** ms from `ip link add` to the traffic control installed again, median of the relinks */
  relink_ms: number;
  setup: { flows: number[]; rounds: number; turns: number; seconds: number; in_flight: number; relinks: number; link_rate: string; flow_rate: string; cpus: number; kernel: string; node: string };
}

const PREFIX = 'qosbt';
const IPERF_PORT = 5201;
const SHAPE_PORT = 6001;
const END_PORT = 6009;
/** far above what iperf3 gets through a veth: HTB's link rate never limits it */
const LINK_RATE = '100Gbit';
/** each benchmark flow's TokenRate: 10,000 of them reserve 10 Gb/s of the 100 */
const FLOW_RATE = '1Mbit';
const PAYLOAD = CBR_PAYLOAD;
/** every flow's TokenBucketSize, bytes (Guaranteed needs one; the e2e test's) */
const BUCKET = 10_000;
const SHAPE_SENT_BPS = 5e6;
const SHAPE_RATE_BPS = 1e6;
const TOOLS = ['ip', 'tc', 'nft', 'iperf3', 'tcpdump', 'tshark', 'python3'];

/** Why the benchmark cannot run here, or null. */
export function tcBenchUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'qos bench tc needs root: it creates network namespaces, queueing disciplines and an nftables table';
  for (const tool of TOOLS) if (!installed(tool)) return `qos bench tc needs \`${tool}\` (apt-get install ${packageOf(tool)})`;
  return null;
}

/** Reads and drops datagrams to the ports given. */
const SINK = `import select, socket, sys
socks = []
for p in sys.argv[1:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('', int(p)))
    socks.append(s)
while True:
    for s in select.select(socks, [], [])[0]:
        s.recv(65536)
`;
const SEND_ONE = 'import socket, sys\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(sys.argv[1].encode(), (sys.argv[2], int(sys.argv[3])))\n';

/** Runs job(0..n-1) with at most `width` running at once. */
async function pool(n: number, width: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => { while (next < n) await job(next++); };
  await Promise.all(Array.from({ length: Math.min(width, n) }, worker));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const gb = (bps: number) => Math.round(bps / 1e7) / 100;
type Link = ReturnType<NamespacePair['addLink']>;

export async function benchTc(o: TcBenchOptions): Promise<TcBenchResult> {
  const why = tcBenchUnavailable();
  if (why) throw new QosError('QOS_ERR_ENVIRONMENT', why);
  if (o.flowsSmall >= o.flowsLarge) throw new QosError('QOS_ERR_USAGE', `--flows-small (${o.flowsSmall}) must be below --flows-large (${o.flowsLarge})`);
  const say = o.progress ?? (() => undefined);
  removeStale(PREFIX);
  const dir = mkdtempSync(join(tmpdir(), 'qosd-bench-tc-'));
  const pair = new NamespacePair(PREFIX);
  const dev = pair.clientDev;
  // the flows' link and the empty one, both under the daemon's HTB, and a third with no qdisc
  const links: [Link, Link, Link] = [
    { clientDev: pair.clientDev, serverDev: pair.serverDev, clientIp: pair.clientIp, serverIp: pair.serverIp },
    pair.addLink(1, 'bz0', 'bz1'),
    pair.addLink(2, 'bb0', 'bb1'),
  ];
  const procs: Child[] = [];
  let daemon: DaemonChild | undefined;
  let n = 0;
  const api = <T>(method: string, path: string, body?: unknown) => callJson<T>(daemon!.admin, method, path, body, 120_000);
  const startDaemon = async () => { daemon = await new DaemonChild(join(dir, `d${n++}`), null, ['--kernel', 'off'], ['ip', 'netns', 'exec', pair.client]).start(); };
  const stopDaemon = async () => { await daemon?.stop(); daemon = undefined; };
  const inClient = (argv: string[]) => runSync(argv, { netns: pair.client, timeoutMs: 120_000 }).stdout;

  /** Creates `count` flows with a filter each; their ids, and the time it took. */
  const create = async (count: number, link: Link): Promise<{ ids: number[]; ms: number }> => {
    const ids: number[] = new Array<number>(count);
    const t0 = performance.now();
    await pool(count, o.inFlight, async (i) => {
      const f = await api<{ id: number }>('POST', '/v1/tc/flows', { dev: link.clientDev, flowspec: { TokenRate: FLOW_RATE, TokenBucketSize: BUCKET }, service: i % 2 ? 'controlled-load' : 'guaranteed', name: `bench${i}` });
      await api('POST', '/v1/tc/filters', { flow: f.id, ...exactFilter(i, link.clientIp, link.serverIp) });
      ids[i] = f.id;
    });
    return { ids, ms: performance.now() - t0 };
  };
  const remove = async (ids: number[]): Promise<number> => {
    const t0 = performance.now();
    await pool(ids.length, o.inFlight, async (i) => { await api('DELETE', `/v1/tc/flows/${ids[i]}`); });
    return performance.now() - t0;
  };
  /** What the kernel holds: HTB classes of flows (all but d5c:1-4) and exact IPv4 filters. */
  const holding = (dev: string, slot: number): { classes: number; exact_filters: number } => {
    const classes = inClient(['tc', 'class', 'show', 'dev', dev]).split('\n').filter((l) => /^class htb d5c:/.test(l) && !/^class htb d5c:[1-4] /.test(l)).length;
    // (the daemon's traffic-control table: its kernel table's name and _tc)
    const map = JSON.parse(inClient(['nft', '-j', 'list', 'map', 'inet', `${daemon!.nftTable}_tc`, `x4_${slot}`])) as { nftables: Array<{ map?: { elem?: unknown[] } }> };
    return { classes, exact_filters: map.nftables.find((x) => x.map)?.map?.elem?.length ?? 0 };
  };

  try {
    for (let i = 0; i < 3; i++) {
      const server = start(['iperf3', '-s', '-p', String(IPERF_PORT + i), '--forceflush'], { netns: pair.server, name: 'iperf3 -s' });
      procs.push(server);
      await server.until('listening', 10_000, 'stdout');
    }
    procs.push(start(['python3', '-c', SINK, String(SHAPE_PORT), String(END_PORT)], { netns: pair.server, name: 'udp sink' }));

    const sizes: Record<'small' | 'large', number> = { small: o.flowsSmall, large: o.flowsLarge };
    const bps: Record<Condition, number[]> = { bare: [], zero: [], small: [], large: [] };
    const ratio: Record<string, number[]> = {};
    const push = (k: string, x: number) => (ratio[k] ??= []).push(x);
    const createMs: Record<'small' | 'large', number[]> = { small: [], large: [] }, deleteMs: Record<'small' | 'large', number[]> = { small: [], large: [] };
    const installedSets: TcBenchResult['installed'] = {};
    const perRound: TcBenchResult['rounds'] = [];
    // the daemon runs throughout, with two links under its traffic control (slots 0 and 1)
    await startDaemon();
    for (const l of [links[0], links[1]]) await api('PUT', `/v1/tc/interfaces/${l.clientDev}`, { rate: LINK_RATE });
    for (let r = 0; r < o.rounds; r++) {
      // the flows go on one link and the other stays empty, the other way round next round:
      // a difference between the two veth pairs favours neither side over the run
      const [on, off] = (r % 2 ? [1, 0] : [0, 1]) as [0 | 1, 0 | 1];
      for (const c of (r % 2 ? ['large', 'small'] : ['small', 'large']) as ('small' | 'large')[]) {
        const link = links[on];
        const made = await create(sizes[c], link);
        createMs[c].push(made.ms);
        const list = (await api<{ flows: unknown[]; filters: unknown[] }>('GET', '/v1/tc'));
        if (list.flows.length !== sizes[c] || list.filters.length !== sizes[c]) throw new QosError('QOS_ERR_BENCH', `the daemon holds ${list.flows.length} flows and ${list.filters.length} filters, not ${sizes[c]}`);
        const h = holding(link.clientDev, on);
        if (h.classes !== sizes[c] || h.exact_filters !== sizes[c]) throw new QosError('QOS_ERR_BENCH', `the kernel holds ${h.classes} flow classes and ${h.exact_filters} exact filters on ${link.clientDev}, not ${sizes[c]}`);
        installedSets[String(sizes[c])] ??= h;
        say(`round ${r + 1}: ${sizes[c]} flows with filters created on ${link.clientDev} in ${made.ms.toFixed(0)} ms`);
        // the three links at once, each to its own iperf3 server: the set's, the empty one, no qdisc
        const at: Record<'flows' | 'zero' | 'bare', number[]> = { flows: [], zero: [], bare: [] };
        for (let k = 0; k < o.turns; k++) {
          const [f0, z0, b0] = await Promise.all([links[on], links[off], links[2]].map((l, i) => iperfAsync(pair, IPERF_PORT + i, o.seconds, l.serverIp)));
          at.flows.push(f0!); at.zero.push(z0!); at.bare.push(b0!);
          const [f, z, b] = [at.flows.at(-1)!, at.zero.at(-1)!, at.bare.at(-1)!];
          push(`throughput_ratio_${sizes[c]}_flows`, f / z);
          push(`throughput_ratio_${sizes[c]}_flows_vs_bare`, f / b);
          push('throughput_ratio_no_flows_vs_bare', z / b);
          bps[c].push(f); bps.zero.push(z); bps.bare.push(b);
        }
        const ms = await remove(made.ids);
        deleteMs[c].push(ms);
        const rs = at.flows.map((f, i) => Math.round((f / at.zero[i]!) * 1000) / 1000);
        perRound.push({ round: r + 1, flows: sizes[c], link: link.clientDev, ratios: rs, gbps: { flows: at.flows.map(gb), zero: at.zero.map(gb), bare: at.bare.map(gb) } });
        say(`round ${r + 1}/${o.rounds}, ${sizes[c]} flows (deleted in ${ms.toFixed(0)} ms): with them / beside no flows ${rs.join(' ')}`);
      }
    }
    await stopDaemon();

    // shaping: one flow on the first link, a round each
    await startDaemon();
    await api('PUT', `/v1/tc/interfaces/${dev}`, { rate: LINK_RATE });
    const shapeMbps: number[] = [];
    for (let r = 0; r < o.rounds; r++) {
      const flow = await api<{ id: number }>('POST', '/v1/tc/flows', { dev, flowspec: { TokenRate: `${SHAPE_RATE_BPS}bit`, TokenBucketSize: BUCKET, MinimumPolicedSize: PAYLOAD }, service: 'guaranteed' });
      await api('POST', '/v1/tc/filters', { flow: flow.id, dst: pair.serverIp, proto: 'udp', dport: SHAPE_PORT });
      const file = join(dir, `shape${r}.pcap`);
      const cap = start(['tcpdump', '-i', pair.serverDev, '--immediate-mode', '-B', '65536', '-U', '-n', '-w', file, `udp and (dst port ${SHAPE_PORT} or dst port ${END_PORT})`], { netns: pair.server, name: 'tcpdump', stdio: ['ignore', 'ignore', 'pipe'] });
      procs.push(cap);
      await cap.until('listening on', 60_000);
      runSync(['python3', '-c', CBR_PROGRAM, pair.serverIp, String(SHAPE_PORT), String(SHAPE_SENT_BPS), String(o.seconds)], { netns: pair.client, timeoutMs: (o.seconds + 60) * 1000 });
      // the flow's queue holds at most its Latency (100 ms) at its rate: let it drain, then
      // send end marks (unshaped) until the capture has written one
      await sleep(300);
      const mark = `qosd-bench-tc-end-${process.pid}-${r}`;
      for (let k = 0; ; k++) {
        let seen = false;
        try { seen = readFileSync(file).includes(mark); } catch { /* not written yet */ }
        if (seen) break;
        if (k > 120) throw new QosError('QOS_ERR_BENCH', `the capture ${file} never got its end mark`);
        runSync(['python3', '-c', SEND_ONE, mark, pair.serverIp, String(END_PORT)], { netns: pair.client });
        await sleep(250);
      }
      await cap.stop('SIGINT');
      const times = runSync(['tshark', '-r', file, '-Y', `udp.dstport == ${SHAPE_PORT} && ip.len == ${PAYLOAD + 28}`, '-T', 'fields', '-e', 'frame.time_epoch'], { timeoutMs: 120_000 })
        .stdout.split('\n').filter(Boolean).map(Number);
      const rate = steadyRate(times, PAYLOAD);
      shapeMbps.push(rate / 1e6);
      say(`shape round ${r + 1}/${o.rounds}: ${(rate / 1e6).toFixed(4)} Mb/s of payload (${times.length} datagrams arrived): ${errorPct(rate, SHAPE_RATE_BPS).toFixed(2)} %`);
      await api('DELETE', `/v1/tc/flows/${flow.id}`);
    }
    await stopDaemon();

    // relink: a link of its own deleted and made again with its name
    await startDaemon();
    const rl = { n: 3, clientDev: 'rl0', serverDev: 'rl1' };
    pair.addLink(rl.n, rl.clientDev, rl.serverDev);
    await api('PUT', `/v1/tc/interfaces/${rl.clientDev}`, { rate: '100Mbit' });
    const relinkFlow = await api<{ id: number }>('POST', '/v1/tc/flows', { dev: rl.clientDev, flowspec: { TokenRate: FLOW_RATE, TokenBucketSize: BUCKET }, service: 'controlled-load', dscp: 34 });
    for (const dst of [`10.250.${rl.n}.2`, 'fd00:250::2']) await api('POST', '/v1/tc/filters', { flow: relinkFlow.id, dst, proto: 'udp', dport: SHAPE_PORT });
    const relinkMs: number[] = [];
    const logged = async (msg: string, from: number): Promise<number> => {
      for (let k = 0; k < 3000; k++) {
        const at = loggedAt(daemon!.log.slice(from), msg, rl.clientDev);
        if (at !== null) return at;
        await sleep(10);
      }
      throw new QosError('QOS_ERR_BENCH', `the daemon did not log "${msg}" for ${rl.clientDev} within 30 s`);
    };
    for (let r = 0; r < o.relinks; r++) {
      let from = daemon!.log.length;
      runSync(['ip', '-n', pair.client, 'link', 'del', rl.clientDev]);
      await logged(GONE_MSG, from);
      from = daemon!.log.length;
      const t0 = Date.now();
      pair.addLink(rl.n, rl.clientDev, rl.serverDev);
      const ms = (await logged(RESTORED_MSG, from)) - t0;
      const q = inClient(['tc', 'qdisc', 'show', 'dev', rl.clientDev]), c = inClient(['tc', 'class', 'show', 'dev', rl.clientDev]);
      const t = inClient(['nft', 'list', 'table', 'inet', `${daemon!.nftTable}_tc`]);
      if (!/htb d5c: root/.test(q) || !c.includes(`class htb d5c:${(0x10 + relinkFlow.id).toString(16)} `) || !t.includes(`oifname "${rl.clientDev}" ip saddr`) || !t.includes(`oifname "${rl.clientDev}" ip6 saddr`)) {
        throw new QosError('QOS_ERR_BENCH', `the daemon said ${rl.clientDev}'s traffic control is back, but the kernel does not hold it:\n${q}${c}`);
      }
      relinkMs.push(ms);
      say(`relink ${r + 1}/${o.relinks}: traffic control back ${ms} ms after ip link add`);
    }
    await stopDaemon();

    const spreads: Record<string, Spread> = {};
    const out: Record<string, number> = {};
    for (const c of ['small', 'large'] as const) {
      const k = sizes[c];
      spreads[`create_${k}_flows_ms`] = spread(createMs[c], 0);
      spreads[`delete_${k}_flows_ms`] = spread(deleteMs[c], 0);
      spreads[`throughput_ratio_${k}_flows`] = spread(ratio[`throughput_ratio_${k}_flows`]!);
      spreads[`throughput_ratio_${k}_flows_vs_bare`] = spread(ratio[`throughput_ratio_${k}_flows_vs_bare`]!);
    }
    spreads.throughput_ratio_no_flows_vs_bare = spread(ratio.throughput_ratio_no_flows_vs_bare!);
    spreads.shape_accuracy_pct = spread(shapeMbps.map((m) => errorPct(m * 1e6, SHAPE_RATE_BPS)), 2);
    spreads.relink_ms = spread(relinkMs, 0);
    for (const [k, s] of Object.entries(spreads)) out[k] = s.median;
    const shape = out.shape_accuracy_pct!;
    const targets: Record<string, Target> = {
      [`create_${sizes.small}_flows_ms`]: { value: out[`create_${sizes.small}_flows_ms`]!, limit: 3000, ok: out[`create_${sizes.small}_flows_ms`]! <= 3000 },
      [`throughput_ratio_${sizes.small}_flows`]: { value: out[`throughput_ratio_${sizes.small}_flows`]!, limit: 0.9, ok: out[`throughput_ratio_${sizes.small}_flows`]! >= 0.9 },
      [`throughput_ratio_${sizes.large}_flows`]: { value: out[`throughput_ratio_${sizes.large}_flows`]!, limit: 0.9, ok: out[`throughput_ratio_${sizes.large}_flows`]! >= 0.9 },
      // |error| at most 5 %: the tolerance of src/e2e/tc.test.ts's shaping test
      shape_accuracy_pct: { value: shape, limit: 5, ok: Math.abs(shape) <= 5 },
      // the issue's bound: an interface made again has its traffic control back within 2 s
      relink_ms: { value: out.relink_ms!, limit: 2000, ok: out.relink_ms! <= 2000 },
    };
    const med = (xs: number[]) => spread(xs, 0).median;
    return {
      ...out,
      shape_accuracy_pct: shape,
      relink_ms: out.relink_ms!,
      shape_mbps: spread(shapeMbps, 4).median,
      throughput_bps: { bare: med(bps.bare), zero: med(bps.zero), small: med(bps.small), large: med(bps.large) },
      spread: spreads,
      installed: installedSets,
      rounds: perRound,
      targets,
      setup: { flows: [sizes.small, sizes.large], rounds: o.rounds, turns: o.turns, seconds: o.seconds, in_flight: o.inFlight, relinks: o.relinks, link_rate: LINK_RATE, flow_rate: FLOW_RATE, cpus: cpus().length, kernel: runSync(['uname', '-r']).stdout.trim(), node: process.version },
    };
  } catch (e) {
    // what the daemon said is the likeliest explanation
    if (daemon && e instanceof Error) e.message += `\n--- the daemon's log (last lines) ---\n${daemon.log.trim().split('\n').slice(-8).join('\n')}`;
    throw e;
  } finally {
    await daemon?.stop().catch(() => undefined);
    for (const p of procs) p.kill();
    pair.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The result for people: one line per figure, with its spread and target. */
export function formatTcBench(r: TcBenchResult): string {
  const [small, large] = r.setup.flows as [number, number];
  const s = (k: string, unit = '') => { const x = r.spread[k]!; return `${x.median}${unit} (${x.min}-${x.max})`; };
  const t = (k: string) => { const x = r.targets[k]; return x ? `; target ${k.startsWith('create') || k.startsWith('relink') ? '<=' : k.startsWith('shape') ? '|x| <=' : '>='} ${x.limit}: ${x.ok ? 'ok' : 'MISSED'}` : ''; };
  const lines = [`host traffic control on a veth at ${r.setup.link_rate}, flows of ${r.setup.flow_rate} with one exact UDP filter each, ${r.setup.in_flight} requests in flight; medians of ${r.setup.rounds} rounds x ${r.setup.turns} turns (min-max)`];
  for (const k of [small, large]) {
    lines.push(`${k} flows: create ${s(`create_${k}_flows_ms`, ' ms')}${t(`create_${k}_flows_ms`)}; delete ${s(`delete_${k}_flows_ms`, ' ms')}`);
    lines.push(`  throughput beside them / no flows ${s(`throughput_ratio_${k}_flows`)}${t(`throughput_ratio_${k}_flows`)}; / no qdisc ${s(`throughput_ratio_${k}_flows_vs_bare`)}`);
  }
  lines.push(`no flows / no qdisc ${s('throughput_ratio_no_flows_vs_bare')}; Gb/s: no qdisc ${(r.throughput_bps.bare / 1e9).toFixed(2)}, no flows ${(r.throughput_bps.zero / 1e9).toFixed(2)}, ${small} flows ${(r.throughput_bps.small / 1e9).toFixed(2)}, ${large} flows ${(r.throughput_bps.large / 1e9).toFixed(2)}`);
  lines.push(`shaping 5 Mb/s of CBR to 1 Mb/s: ${r.shape_mbps} Mb/s, error ${s('shape_accuracy_pct', ' %')}${t('shape_accuracy_pct')}`);
  lines.push(`a link deleted and made again with its name (1 flow, an IPv4 and an IPv6 filter, ${r.setup.relinks} times): traffic control back ${s('relink_ms', ' ms')} after ip link add${t('relink_ms')}`);
  return lines.join('\n');
}
