/* `qos bench ...`: the benchmarks (bench/), each loaded only when its command runs; they print
 * figures and are never part of the tests. */

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command } from 'commander';
import { QosError } from '../../errors.js';
import { parseCtMask } from '../../kernel/ctmark.js';
import { print } from '../format.js';
import { duration, positiveInt, wholeNumber } from '../options.js';
import { parseRate } from '../../units.js';

/** A benchmark's progress lines go to stderr, unless it prints JSON. */
function benchProgress(json: boolean | undefined): ((m: string) => void) | undefined {
  return json ? undefined : (m) => process.stderr.write(`${m}\n`);
}
/** --check: exit 1 if a target is missed. */
function checkTargets(check: boolean | undefined, targets: Record<string, { ok: boolean }>): void {
  if (check && !Object.values(targets).every((t) => t.ok)) process.exitCode = 1;
}

/** A bench subcommand with the options every benchmark has. */
function benchCommand(bench: Command, name: string, description: string, threads: { help: string; count: number; loadMs: number; loadHelp: string }): Command {
  return bench
    .command(name)
    .description(description)
    .option('--json', 'print one JSON object')
    .option('--threads <n>', threads.help, (v) => positiveInt(v, '--threads'), threads.count)
    .option('--load-ms <ms>', threads.loadHelp, (v) => positiveInt(v, '--load-ms'), threads.loadMs)
    .option('--check', 'exit 1 if a target is missed');
}

/** Registers `qos bench` and its subcommands. */
export function benchCommands(program: Command): void {
  const bench = program.command('bench').description('measure qosd on this machine (prints figures; never part of the tests)');

  benchCommand(bench, 'agent', 'what the agent adds to connect() and send(), against a bare C-to-C Unix socket round trip and against a bare setsockopt(IP_TOS) LD_PRELOAD shim (system calls counted with strace, the daemon\'s CPU per cached connect), and daemon decisions/s with a 1,000-rule policy',
    { help: 'concurrent agents for the decisions/s load', count: 16, loadMs: 3000, loadHelp: 'duration of each window of the decisions/s load' })
    .option('--load-windows <n>', 'windows of the decisions/s load; the figure is their median, with the slowest and fastest', (v) => positiveInt(v, '--load-windows'), 5)
    .option('--rounds <n>', 'connect rounds; figures are medians over rounds', (v) => positiveInt(v, '--rounds'), 7)
    .option('--send-rounds <n>', 'send-path runs per side, interleaved', (v) => positiveInt(v, '--send-rounds'), 11)
    .option('--connects <n>', 'connects per connect+close run', (v) => positiveInt(v, '--connects'), 10_000)
    .option('--sends <n>', 'sends per send-path run', (v) => positiveInt(v, '--sends'), 1_000_000)
    .option('--pairs <n>', 'alternating runs of the agent (cached) and a bare setsockopt(IP_TOS) shim, connect+close and curl; figures are medians over pairs', (v) => positiveInt(v, '--pairs'), 11)
    .option('--curl-files <n>', 'files curl fetches from a local HTTP server in one process, a connection each', (v) => positiveInt(v, '--curl-files'), 200)
    .option('--strace-connects <n>', 'connects of the shorter strace run counting system calls (the longer has twice as many)', (v) => positiveInt(v, '--strace-connects'), 2000)
    .option('--cpu-connects <n>', "cached connects over which the daemon's CPU is read from /proc", (v) => positiveInt(v, '--cpu-connects'), 20_000)
    .action(async (o: { json?: boolean; rounds: number; sendRounds: number; connects: number; sends: number; threads: number; loadMs: number; loadWindows: number; pairs: number; curlFiles: number; straceConnects: number; cpuConnects: number; check?: boolean }) => {
      const { benchAgent, formatAgentBench } = await import('../../bench/agent.js');
      const r = await benchAgent({ ...o, progress: benchProgress(o.json) });
      print(o.json ? JSON.stringify(r, null, 2) : formatAgentBench(r));
      checkTargets(o.check, r.targets);
    });

  benchCommand(bench, 'policy', 'policy scripts end to end through the daemon: JavaScript and Safe Tcl decisions/s, what a script adds over the rules, and a deadline-hitting script beside rules-only clients',
    { help: 'concurrent agents', count: 32, loadMs: 2000, loadHelp: 'duration of each load' })
    .option('--rounds <n>', 'rounds; figures are medians over rounds', (v) => positiveInt(v, '--rounds'), 3)
    .action(async (o: { json?: boolean; rounds: number; threads: number; loadMs: number; check?: boolean }) => {
      const { benchPolicy } = await import('../../bench/policy.js');
      const r = await benchPolicy({ ...o, progress: benchProgress(o.json) });
      print(JSON.stringify(r, null, 2));
      checkTargets(o.check, r.targets);
    });

  bench
    .command('hostile')
    .description("another user's answer times while one user attacks the daemon: 21,000 held connections, a flood of malformed lines, a policy script made to spin and hang; p99 of each against the agent's 50 ms (needs root: the two users run as uids of their own)")
    .option('--requests <n>', "the legitimate user's requests per scenario (a p99 wants 500 or more)", (v) => positiveInt(v, '--requests'), 500)
    .option('--json', 'print one JSON object')
    .option('--check', 'exit 1 if a target is missed')
    .action(async (o: { requests: number; json?: boolean; check?: boolean }) => {
      const { benchHostile } = await import('../../bench/hostile.js');
      const r = await benchHostile({ requests: o.requests, progress: benchProgress(o.json) });
      print(JSON.stringify(r, null, 2));
      checkTargets(o.check, r.targets);
    });

  bench
    .command('ab')
    .description('two builds of the daemon (or one build with two sets of options) with the same policy, in alternating load windows: decisions/s, the daemon\'s CPU and the load clients\' CPU per Socket+Connect pair of each, and their ratio (judges a change on a machine whose speed drifts)')
    .requiredOption('--old <cli>', 'the old build\'s qos entry point (a checkout\'s dist/cli/main.js)')
    .option('--new <cli>', 'the new build\'s entry point (default: this one)')
    .requiredOption('--policy <file>', 'policy file for both (its directory is copied, so a script beside it comes along)')
    .option('--new-policy <file>', 'another policy for the new build')
    .option('--rounds <n>', 'rounds of one window each, alternating order', (v) => positiveInt(v, '--rounds'), 8)
    .option('--load-ms <ms>', 'length of each window', (v) => positiveInt(v, '--load-ms'), 1500)
    .option('--threads <n>', 'concurrent agents', (v) => positiveInt(v, '--threads'), 32)
    .option('--old-args <args>', 'more `qos daemon` options for the old side, space-separated (e.g. "--nice keep")')
    .option('--new-args <args>', 'more `qos daemon` options for the new side (e.g. --new the same build with "--nice keep": what the daemon\'s priority does)')
    .option('--json', 'print one JSON object with every round')
    .action(async (o: { old: string; new?: string; policy: string; newPolicy?: string; rounds: number; loadMs: number; threads: number; oldArgs?: string; newArgs?: string; json?: boolean }) => {
      for (const f of [o.old, o.new, o.policy, o.newPolicy]) if (f !== undefined && !existsSync(f)) throw new QosError('QOS_ERR_USAGE', `no such file: ${f}`);
      const { benchAb } = await import('../../bench/ab.js');
      const { QOS_CLI } = await import('../../daemon/child.js');
      const r = await benchAb({
        oldCli: resolve(o.old), newCli: o.new ? resolve(o.new) : QOS_CLI, oldPolicy: resolve(o.policy), newPolicy: resolve(o.newPolicy ?? o.policy),
        rounds: o.rounds, loadMs: o.loadMs, threads: o.threads, progress: benchProgress(o.json),
        oldArgs: (o.oldArgs ?? '').split(/\s+/).filter(Boolean), newArgs: (o.newArgs ?? '').split(/\s+/).filter(Boolean),
      });
      if (o.json) print(JSON.stringify(r, null, 2));
      else {
        const { rounds: _r, setup: _s, ...summary } = r;
        print(JSON.stringify(summary, null, 2));
      }
    });

  bench
    .command('rules')
    .description('kernel rules: iperf3 throughput between two namespaces with a generated rule set in the daemon\'s nftables table against none, the time to apply the set, and to move one rule (needs root, nft, iperf3)')
    .option('--json', 'print one JSON object')
    .option('--rules <n>', 'generated rules (the last one the default)', (v) => positiveInt(v, '--rules'), 10_000)
    .option('--rounds <n>', 'throughput rounds (with and without, alternating order) and applies; figures are medians', (v) => positiveInt(v, '--rounds'), 5)
    .option('--seconds <n>', 'length of each iperf3 run', (v) => positiveInt(v, '--seconds'), 3)
    .option('--moves <n>', 'rules moved, one request each', (v) => positiveInt(v, '--moves'), 15)
    .option('--seed <n>', 'seed of the generated rules and of the moves', (v) => positiveInt(v, '--seed'), 1)
    .option('--ct-mask <mask>', "the daemon's --ct-mask (0xffffffff: the whole mark, the plan without a chain per rule)")
    .option('--check', 'exit 1 if a target is missed')
    .action(async (o: { json?: boolean; rules: number; rounds: number; seconds: number; moves: number; seed: number; ctMask?: string; check?: boolean }) => {
      if (o.rules < 2) throw new QosError('QOS_ERR_USAGE', '--rules takes at least 2 (a rule to move and the default)');
      if (o.ctMask !== undefined) parseCtMask(o.ctMask);
      const { benchRules, formatRulesBench } = await import('../../bench/rules.js');
      const r = await benchRules({ ...o, progress: benchProgress(o.json) });
      print(o.json ? JSON.stringify(r, null, 2) : formatRulesBench(r));
      checkTargets(o.check, r.targets);
    });

  bench
    .command('ebpf')
    .description('per-executable marking by the cgroup eBPF programs (qos daemon --ebpf on) with a 1,000-rule exe policy in their maps, against nothing attached, in alternating pairs: connect+close of a static client, iperf3 throughput, the sockets\' marks checked on every run; and the time a reload of the policy takes to the next eBPF generation (needs root, a cgroup v2 hierarchy, iperf3, tcpdump)')
    .option('--json', 'print one JSON object')
    .option('--pairs <n>', 'pairs of runs (with the programs and without, alternating order; in each, 5 connect+close runs and 3 iperf3 runs a side by turns); figures are medians of the per-pair ratios, with min and max', (v) => positiveInt(v, '--pairs'), 11)
    .option('--connects <n>', 'timed connect+close of each client run', (v) => positiveInt(v, '--connects'), 5000)
    .option('--seconds <n>', 'length of each iperf3 run', (v) => positiveInt(v, '--seconds'), 2)
    .option('--reloads <n>', 'policy reloads timed to the next eBPF generation', (v) => positiveInt(v, '--reloads'), 10)
    .option('--stats <mode>', 'the daemon\'s per-application counting (docs/apps.md): off measures marking alone; on, what a connect costs with every packet counted too (the daemon\'s default)', 'off')
    .option('--check', 'exit 1 if a target is missed')
    .action(async (o: { json?: boolean; pairs: number; connects: number; seconds: number; reloads: number; stats: string; check?: boolean }) => {
      if (o.stats !== 'on' && o.stats !== 'off') throw new QosError('QOS_ERR_USAGE', `--stats takes on or off, not "${o.stats}"`);
      const { benchEbpf, formatEbpfBench } = await import('../../bench/ebpf.js');
      const r = await benchEbpf({ ...o, stats: o.stats, progress: benchProgress(o.json) });
      print(o.json ? JSON.stringify(r, null, 2) : formatEbpfBench(r));
      checkTargets(o.check, r.targets);
    });

  bench
    .command('stats')
    .description('per-application statistics and limits (docs/apps.md): iperf3 throughput with every packet counted by the eBPF programs against none attached, in alternating pairs; the time the daemon takes to explain a process\'s sockets; how exactly a 10 Mbit/s limit holds an upload and a download (needs root, a cgroup v2 hierarchy, iperf3)')
    .option('--json', 'print one JSON object')
    .option('--pairs <n>', 'pairs of runs (counting on and off, alternating order; 3 iperf3 runs a side by turns); the figure is the median of the per-pair ratios, with min and max', (v) => positiveInt(v, '--pairs'), 7)
    .option('--seconds <n>', 'length of each iperf3 run of the pairs', (v) => positiveInt(v, '--seconds'), 2)
    .option('--limit-runs <n>', 'limited uploads and downloads, each (5 s, four sockets)', (v) => positiveInt(v, '--limit-runs'), 3)
    .option('--explains <n>', 'explain requests timed', (v) => positiveInt(v, '--explains'), 50)
    .option('--check', 'exit 1 if a target is missed')
    .action(async (o: { json?: boolean; pairs: number; seconds: number; limitRuns: number; explains: number; check?: boolean }) => {
      const { benchStats, formatStatsBench } = await import('../../bench/stats.js');
      const r = await benchStats({ ...o, progress: benchProgress(o.json) });
      print(o.json ? JSON.stringify(r, null, 2) : formatStatsBench(r));
      checkTargets(o.check, r.targets);
    });

  bench
    .command('tc')
    .description('host traffic control: the time to create and delete 1,000 and 10,000 flows with an exact filter each through the admin API, iperf3 throughput of unfiltered traffic beside them against no flows (and no qdisc), the error of shaping 5 Mb/s of CBR to 1 Mb/s, and the time a link deleted and made again takes to get its traffic control back (needs root, tc, nft, iperf3, tcpdump, tshark, python3)')
    .option('--json', 'print one JSON object')
    .option('--flows-small <n>', 'the smaller set of flows', (v) => positiveInt(v, '--flows-small'), 1000)
    .option('--flows-large <n>', 'the larger set of flows', (v) => positiveInt(v, '--flows-large'), 10_000)
    .option('--rounds <n>', 'rounds: each creates each set on one link (the other link each round), measures, deletes; and a shaping run', (v) => positiveInt(v, '--rounds'), 4)
    .option('--turns <n>', 'turns per set and round: iperf3 on the three links at once (the set\'s, an empty one, one with no qdisc), each turn a ratio', (v) => positiveInt(v, '--turns'), 4)
    .option('--seconds <n>', 'length of each iperf3 run and each shaping run', (v) => positiveInt(v, '--seconds'), 2)
    .option('--in-flight <n>', 'admin API requests in flight at once while creating or deleting flows (each holds a connection: past the admin socket\'s listen backlog, 511, a connect may fail with EAGAIN)', (v) => positiveInt(v, '--in-flight'), 500)
    .option('--relinks <n>', 'times a link with a flow is deleted and made again with its name, each timed until its traffic control is back (relink_ms)', (v) => positiveInt(v, '--relinks'), 7)
    .option('--check', 'exit 1 if a target is missed')
    .action(async (o: { json?: boolean; flowsSmall: number; flowsLarge: number; rounds: number; turns: number; seconds: number; inFlight: number; relinks: number; check?: boolean }) => {
      if (o.flowsSmall >= o.flowsLarge) throw new QosError('QOS_ERR_USAGE', `--flows-small (${o.flowsSmall}) must be below --flows-large (${o.flowsLarge})`);
      const { benchTc, formatTcBench } = await import('../../bench/tc.js');
      const r = await benchTc({ ...o, progress: benchProgress(o.json) });
      print(o.json ? JSON.stringify(r, null, 2) : formatTcBench(r));
      checkTargets(o.check, r.targets);
    });

  bench
    .command('tcp-cheat')
    .description('sender TCP cheating (qos rsvp cheat, an experiment; docs/tcp-cheating.md): a TCP transfer\'s goodput through a 20 Mbit/s reserved path whose reverse path (256 kbit/s unless told) is flooded with UDP, with the cheat on the ingress router and without, in alternating rounds (needs root, ip, tc, nft)')
    .option('--json', 'print one JSON object')
    .option('--rounds <n>', 'pairs of rounds (with and without); figures are medians with min and max', (v) => positiveInt(v, '--rounds'), 5)
    .option('--seconds <n>', 'the measured window of each round', (v) => positiveInt(v, '--seconds'), 4)
    .option('--window <bytes>', 'W_R, the window the fake ACKs announce', (v) => positiveInt(v, '--window'), 65_536)
    .option('--congestion-control <name>', 'the sender\'s TCP congestion control, one of net.ipv4.tcp_allowed_congestion_control (a namespace may take no other), e.g. reno or bbr (default: the machine\'s, net.ipv4.tcp_congestion_control)')
    .option('--reverse-rate <rate>', 'the reverse path\'s rate (the receiver\'s link toward the router): 256kbit, 128kbit', '256kbit')
    .action(async (o: { json?: boolean; rounds: number; seconds: number; window: number; congestionControl?: string; reverseRate: string }) => {
      if (o.congestionControl !== undefined && !/^[a-z0-9_]{1,15}$/.test(o.congestionControl)) throw new QosError('QOS_ERR_USAGE', `--congestion-control takes an algorithm's name (cubic, bbr, reno), not "${o.congestionControl}"`);
      const { benchTcpCheat, formatTcpCheatBench } = await import('../../bench/tcp-cheat.js');
      const { reverseRate, ...rest } = o;
      const reverseBits = parseRate(reverseRate) * 8;
      if (reverseBits < 8_000) throw new QosError('QOS_ERR_USAGE', `--reverse-rate takes at least 8kbit, not "${reverseRate}"`);
      const r = await benchTcpCheat({ ...rest, reverseBits, progress: benchProgress(o.json) });
      print(o.json ? JSON.stringify(r, null, 2) : formatTcpCheatBench(r));
    });

  bench
    .command('dashboard')
    .description('the web dashboard in headless chromium against a real daemon: a connect to its row in the Flows page (sse_lag_ms), a cold load of the page (page_load_ms), the app\'s size gzip-compressed (bundle_kb), and the daemon\'s idle CPU with the page open against without')
    .option('--json', 'print one JSON object')
    .option('--samples <n>', 'curls under qos run, one after another, for the lag', (v) => positiveInt(v, '--samples'), 40)
    .option('--loads <n>', 'cold page loads; the figure is their median', (v) => positiveInt(v, '--loads'), 10)
    .option('--idle-s <s>', 'seconds of each idle CPU window', (v) => positiveInt(v, '--idle-s'), 10)
    .option('--rounds <n>', 'idle CPU rounds (a window without the page, then one with it)', (v) => positiveInt(v, '--rounds'), 3)
    .option('--check', 'exit 1 if a target is missed')
    .action(async (o: { json?: boolean; samples: number; loads: number; idleS: number; rounds: number; check?: boolean }) => {
      const { benchDashboard } = await import('../../bench/dashboard.js');
      const r = await benchDashboard({ ...o, progress: benchProgress(o.json) });
      print(JSON.stringify(r, null, 2));
      checkTargets(o.check, r.targets);
    });

  bench
    .command('fleet')
    .description('a fleet (docs/fleet.md) on this machine: a local etcd cluster and N daemons taking their policy from it; the time from a push to the last daemon reporting it applied (p50, p99), etcd\'s keys and watchers per node, the bytes etcd sends per node per push and at rest, lease keep-alives and status writes, daemon RSS and etcd\'s database size (needs etcd: Debian etcd-server; docs/fleet-cost.md)')
    .option('--json', 'print one JSON object')
    .option('--daemons <n>', 'daemons, each a node of the fleet', (v) => positiveInt(v, '--daemons'), 20)
    .option('--pushes <n>', 'fleet-wide pushes, alternating two policies, each timed to the last daemon', (v) => positiveInt(v, '--pushes'), 30)
    .option('--members <n>', 'etcd members', (v) => positiveInt(v, '--members'), 3)
    .option('--groups <n>', 'groups each daemon is in (each adds two watched keys)', (v) => wholeNumber(v, '--groups'), 1)
    .option('--policy-rules <n>', 'rules of each generated policy (its size is reported)', (v) => positiveInt(v, '--policy-rules'), 100)
    .option('--idle-s <s>', 'seconds of the window with no push (keep-alives, status writes): at least the daemons\' --fleet-status-interval (30 s)', (v) => positiveInt(v, '--idle-s'), 30)
    .option('--fleet-lease <time>', 'the daemons\' --fleet-lease (keep-alives go every third of it)', (v) => duration(v, '--fleet-lease'), 10)
    .option('--check', 'exit 1 if a target is missed')
    .action(async (o: { json?: boolean; daemons: number; pushes: number; members: number; groups: number; policyRules: number; idleS: number; fleetLease: number; check?: boolean }) => {
      if (o.members > 9) throw new QosError('QOS_ERR_USAGE', `--members takes 1 to 9 (an etcd cluster is 1, 3 or 5 members), not ${o.members}`);
      if (!(o.fleetLease >= 2 && o.fleetLease <= 3600)) throw new QosError('QOS_ERR_USAGE', '--fleet-lease is from 2s to 1h');
      const { benchFleet, formatFleetBench } = await import('../../bench/fleet.js');
      const { fleetLease, ...rest } = o;
      const r = await benchFleet({ ...rest, leaseS: Math.round(fleetLease), progress: benchProgress(o.json) });
      print(o.json ? JSON.stringify(r, null, 2) : formatFleetBench(r));
      checkTargets(o.check, r.targets);
    });

  bench
    .command('characterize')
    .description('traffic characterisation: b(r) packet-rates/s off-line, packets/s on-line, and the peak memory of qos characterize on a capture file and one four times as long')
    .option('--json', 'print one JSON object')
    .option('--packets <n>', 'synthetic packets', (v) => positiveInt(v, '--packets'), 10_000_000)
    .option('--rates <n>', 'rates of the curve', (v) => positiveInt(v, '--rates'), 64)
    .option('--runs <n>', 'runs; figures are medians', (v) => positiveInt(v, '--runs'), 3)
    .option('--file-packets <n>', 'packets of the smaller capture file (the larger has four times as many)', (v) => positiveInt(v, '--file-packets'), 500_000)
    .option('--check', 'exit 1 if a target is missed')
    .action(async (o: { json?: boolean; packets: number; rates: number; runs: number; filePackets: number; check?: boolean }) => {
      const { benchCharacterize } = await import('../../bench/characterize.js');
      const r = await benchCharacterize({ ...o, progress: benchProgress(o.json) });
      print(JSON.stringify(r, null, 2));
      checkTargets(o.check, r.targets);
    });
}
