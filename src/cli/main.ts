#!/usr/bin/env node
/* qos: the single command-line entry point. Errors are caught here, once, and mapped to exit
 * codes (errors.ts); --json prints machine-readable output wherever there is output. */

import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, CommanderError } from 'commander';
import { writeFileAtomic } from '../atomic-file.js';
import { exitCodeFor, formatProblems, QosError } from '../errors.js';
import { idEntries } from '../id-names.js';
import { DEFAULT_CT_MASK, hex32, parseCtMask } from '../kernel/ctmark.js';
import { AGENT_LIBRARY, adminSocket, agentSocket, choosePolicy, DEFAULT_NFT_TABLE, DEFAULT_POLICY_FILE, DEFAULT_RULES_FILE, PACKAGE_VERSION } from '../paths.js';
import { call, callJson, stream } from '../daemon/admin-client.js';
import { formatDecision, formatFlows, formatStatus } from './format.js';
import { rulesCommand } from './rules.js';
import { serviceCommands } from './service.js';

const program = new Command('qos')
  .description('Quality of service for unmodified applications: marks their sockets by per-machine policy.')
  .version(PACKAGE_VERSION)
  .showHelpAfterError()
  .enablePositionalOptions()
  .exitOverride();

program
  .command('daemon')
  .description('run the policy daemon (agents ask it how to treat each socket)')
  .option('--socket <path>', 'agent socket (env QOSD_SOCKET)', agentSocket())
  .option('--admin <path>', 'admin API socket (env QOSD_ADMIN)', adminSocket())
  .option('--policy <file>', `policy file, YAML or JSON, where only root (or the daemon's user) can change it (default: ${DEFAULT_POLICY_FILE} if it is there, else the built-in policy, which \`qos policy default\` prints)`)
  .option('--log-level <level>', 'fatal, error, warn, info, debug, trace', 'info')
  .option('--nice <n>', 'scheduling priority to take at start, -20..19, or "keep" (default -10: agents wait for the daemon)', niceValue)
  .option('--script-workers <n>', 'worker threads for a policy script (default: the number of cores, at least 2)', (v) => positiveInt(v, '--script-workers'))
  .option('--script-deadline-ms <ms>', 'deadline of one script call', (v) => positiveInt(v, '--script-deadline-ms'), 10)
  .option('--script-memory-mb <mb>', 'memory cap of a script', (v) => positiveInt(v, '--script-memory-mb'), 32)
  .option('--script-nice <n>', 'scheduling priority of policy script threads and processes, -20..19, or "keep" (the daemon\'s)', niceValue, 19)
  .option('--script-answer-ms <ms>', "how long a program's request waits for the script, queueing included, before the rules answer it (keep it below the agent's timeout, 50 ms by default)", (v) => positiveInt(v, '--script-answer-ms'), 30)
  .option('--rules <file>', 'where the kernel rule set is kept (`qos rules`), in a directory only root (or the daemon\'s user) can write', DEFAULT_RULES_FILE)
  .option('--kernel <mode>', 'kernel rules (nftables): auto (if nft works), on (fail if not), off', 'auto')
  .option('--nft-table <name>', 'the nftables table qosd owns (family inet)', DEFAULT_NFT_TABLE)
  .option('--ct-mask <mask>', 'the bits of the connection mark (ct mark) the kernel table may use; it never changes the others (docs/kernel-rules.md, "The connection mark")', hex32(DEFAULT_CT_MASK))
  .option('--ct-generation-bits <n>', 'how many of those bits hold the generation of the rules (default: 8, or more when the mask has over 24 bits); the rest hold the rule number')
  .option('--admin-group <group>', 'a group (name or gid) whose members may use the admin API besides root (default: root only)')
  .option('--max-connections-per-user <n>', 'agent connections one user other than root may hold (default: a quarter of the bound in all, at most 2048)', (v) => positiveInt(v, '--max-connections-per-user'))
  .option('--max-connections <n>', 'agent connections in all (default: half the descriptor limit, at most 32768; a tenth kept for root)', (v) => positiveInt(v, '--max-connections'))
  .option('--max-flows-per-user <n>', "flow-table entries one user may hold; past it the user's oldest go", (v) => positiveInt(v, '--max-flows-per-user'), 65536)
  .option('--max-flows <n>', 'flow-table entries in all; past it new flows are decided but not remembered', (v) => positiveInt(v, '--max-flows'), 1_000_000)
  .action(async (o: { socket: string; admin: string; policy?: string; logLevel: string; nice?: number | 'keep'; scriptWorkers?: number; scriptDeadlineMs: number; scriptMemoryMb: number; scriptAnswerMs: number; scriptNice: number | 'keep'; rules: string; kernel: string; nftTable: string; ctMask: string; ctGenerationBits?: string;
    adminGroup?: string; maxConnectionsPerUser?: number; maxConnections?: number; maxFlowsPerUser: number; maxFlows: number }) => {
    if (o.kernel !== 'auto' && o.kernel !== 'on' && o.kernel !== 'off') throw new QosError('QOS_ERR_USAGE', `--kernel takes auto, on or off, not "${o.kernel}"`);
    if (!/^[A-Za-z_][\w-]{0,63}$/.test(o.nftTable)) throw new QosError('QOS_ERR_USAGE', `--nft-table takes a name of letters, digits, _ and -, not "${o.nftTable}"`);
    const ctMark = parseCtMask(o.ctMask, o.ctGenerationBits);
    // refused before anything starts: the daemon reads and rewrites it as root (secure-path.ts)
    const { checkTrustedPath } = await import('../secure-path.js');
    checkTrustedPath(o.rules, 'the kernel rule store');
    const chosen = choosePolicy(o.policy);
    const { Daemon } = await import('../daemon/daemon.js');
    const agentLimits = {
      ...(o.maxConnections ? { connections: o.maxConnections, rootReserve: Math.max(1, Math.floor(o.maxConnections / 10)) } : {}),
      ...(o.maxConnectionsPerUser ? { perUser: o.maxConnectionsPerUser } : {}),
    };
    const d = new Daemon({
      agentLimits, maxFlows: o.maxFlows, maxFlowsPerUser: o.maxFlowsPerUser, adminGroup: o.adminGroup === undefined ? undefined : groupId(o.adminGroup),
      kernel: { rulesFile: o.rules, table: o.nftTable, mode: o.kernel, ctMark },
      socket: o.socket, admin: o.admin, policy: chosen.file ?? undefined, policyOrigin: chosen.origin, logLevel: o.logLevel, nice: o.nice === 'keep' ? null : o.nice,
      scriptWorkers: o.scriptWorkers, scriptLimits: { deadlineMs: o.scriptDeadlineMs, memoryBytes: o.scriptMemoryMb * 2 ** 20, answerMs: o.scriptAnswerMs, nice: o.scriptNice === 'keep' ? null : o.scriptNice },
    });
    await d.start();
    process.on('SIGHUP', () => void d.reload('SIGHUP'));
    await new Promise<void>((resolve) => {
      const stop = (sig: NodeJS.Signals) => {
        // Honoured within STOP_MS whatever the load: past it the daemon exits as it is (a
        // table left behind is replaced at the next start).
        setTimeout(() => {
          d.log.error({ signal: sig, ms: STOP_MS }, 'stopping took too long; exiting now');
          process.exit(1);
        }, STOP_MS).unref();
        void d.stop().then(resolve);
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
  });

/** How long the daemon may take to stop after SIGTERM or SIGINT. */
const STOP_MS = 2000;

program
  .command('run')
  .description('run an unmodified program with the protocol agent preloaded')
  .usage('[options] -- CMD [ARGS...]')
  .option('--socket <path>', 'daemon socket the agent asks (must match `qos daemon --socket`; env QOSD_SOCKET)', agentSocket())
  .option('--timeout-ms <ms>', 'per-request timeout of the agent (default 50)', (v) => positiveInt(v, '--timeout-ms'))
  .option('--debug', 'let the agent print diagnostics on stderr')
  .argument('<cmd...>', 'the program and its arguments')
  .passThroughOptions()
  .action(async (argv: string[], o: { socket: string; timeoutMs?: number; debug?: boolean }) => {
    const { run } = await import('../run/run.js');
    process.exitCode = await run(argv, { library: AGENT_LIBRARY, socket: o.socket, timeoutMs: o.timeoutMs, debug: o.debug });
  });

program
  .command('try')
  .description('show qosd at work with no internet: curl under the agent to a local server, the decision, and the mark on the wire (tcpdump on lo); uses the running daemon, or a temporary one without kernel rules')
  .option('--port <n>', 'the local server\'s port on 127.0.0.1 (the built-in policy marks 554, RTSP control, AF31)', (v) => positiveInt(v, '--port'), 554)
  .option('--admin <path>', 'admin API socket of a running daemon (its agent socket is the one used)', adminSocket())
  .option('--json', 'print JSON')
  .action(async (o: { port: number; admin: string; json?: boolean }) => {
    if (o.port > 65535) throw new QosError('QOS_ERR_USAGE', `--port takes a port number (1-65535), not ${o.port}`);
    const { tryIt, formatTry } = await import('../run/try.js');
    const t = await tryIt({ library: AGENT_LIBRARY, admin: o.admin, port: o.port });
    print(o.json ? JSON.stringify(t, null, 2) : formatTry(t));
    if (!t.ok) process.exitCode = 1;
  });

program
  .command('status')
  .description("show the daemon's state: policy, agents, flows")
  .option('--admin <path>', 'admin API socket', adminSocket())
  .option('--json', 'print JSON')
  .action(async (o: { admin: string; json?: boolean }) => {
    const s = await callJson<Record<string, unknown>>(o.admin, 'GET', '/v1/status');
    print(o.json ? JSON.stringify(s, null, 2) : formatStatus(s));
  });

program
  .command('flows')
  .description('list the sockets the daemon knows, with their decisions')
  .option('--admin <path>', 'admin API socket', adminSocket())
  .option('--json', 'print JSON')
  .action(async (o: { admin: string; json?: boolean }) => {
    const f = await callJson<Record<string, unknown>[]>(o.admin, 'GET', '/v1/flows');
    print(o.json ? JSON.stringify(f, null, 2) : formatFlows(f));
  });

program
  .command('decisions')
  .description('show recent policy decisions; --follow streams them live')
  .option('--admin <path>', 'admin API socket', adminSocket())
  .option('-f, --follow', 'keep streaming new decisions')
  .option('--limit <n>', 'how many recent decisions to show first (0: none, with --follow only new ones)', (v) => wholeNumber(v, '--limit'), 20)
  .option('--json', 'print one JSON object per line')
  .action(async (o: { admin: string; follow?: boolean; limit: number; json?: boolean }) => {
    let shown = 0;
    await stream(o.admin, `/v1/decisions?limit=${o.limit}${o.follow ? '&follow=1' : ''}`, (line) => {
      shown++;
      if (o.json) return print(line);
      const r = JSON.parse(line) as Record<string, unknown>;
      // the daemon keeps at most 1 MiB for a reader that falls behind, and says what it dropped
      if (typeof r.dropped === 'number') process.stderr.write(`qos decisions: ${r.dropped} decisions dropped: this reader fell behind\n`);
      else print(formatDecision(r));
    });
    if (!shown && !o.json && o.limit > 0) process.stderr.write('qos decisions: none yet: the daemon decides when a program under the agent makes a socket call (qos run -- CMD; qos try shows one)\n');
  });

program
  .command('reload')
  .description('reload the policy file (same as SIGHUP); a bad file keeps the old policy')
  .option('--admin <path>', 'admin API socket', adminSocket())
  .option('--json', 'print JSON')
  .action(async (o: { admin: string; json?: boolean }) => {
    const r = await callJson<{ ok: boolean; rules: number; error?: { message: string; problems?: [] } }>(o.admin, 'POST', '/v1/reload');
    if (o.json) print(JSON.stringify(r, null, 2));
    else if (r.ok) print(`policy reloaded: ${r.rules} rules`);
    else print(`reload failed, previous policy stays in force:\n${formatProblems(r.error?.problems ?? []) || r.error?.message}`);
    if (!r.ok) process.exitCode = 65;
  });

program
  .command('metrics')
  .description('print the Prometheus metrics')
  .option('--admin <path>', 'admin API socket', adminSocket())
  .action(async (o: { admin: string }) => {
    process.stdout.write((await call(o.admin, 'GET', '/metrics')).body);
  });

program.addCommand(rulesCommand(print));
for (const c of serviceCommands(print)) program.addCommand(c);

const policy = program.command('policy').description('work with policy files');
policy
  .command('check')
  .description('validate a policy file; prints every error with line and column')
  .argument('<file>')
  .option('--json', 'print JSON')
  .action(async (file: string, o: { json?: boolean }) => {
    const { loadPolicyFile } = await import('../policy/load.js');
    const { checkScript } = await import('../script/check.js');
    try {
      const { doc, script } = await loadPolicyFile(file, { anyPath: true });
      const handlers = script ? await checkScript(script) : [];
      const { policyPlacement } = await import('../kernel/manager.js');
      const { placements } = policyPlacement(doc);
      const scriptText = script ? `, script ${script.path} (${handlers.join(', ')})` : '';
      const where = placements.map((p) => `  ${p.name ?? `rule ${p.position}`}: ${p.where === 'agent' ? `agent only (${p.reason})` : 'agent and kernel'}`);
      print(o.json
        ? JSON.stringify({ ok: true, file, rules: doc.rules.length, default: doc.default ?? null, script: script ? { file: script.path, handlers } : null, enforcement: placements })
        : [`${file}: ok, ${doc.rules.length} rules${doc.default ? ', with a default (agent only)' : ''}${scriptText}`, ...where].join('\n'));
    } catch (e) {
      if (o.json && e instanceof QosError) {
        print(JSON.stringify({ ok: false, file, error: e.toJSON() }));
        process.exitCode = exitCodeFor(e);
        return;
      }
      throw e;
    }
  });
policy
  .command('default')
  .description(`print the built-in policy (the daemon's when given no --policy and ${DEFAULT_POLICY_FILE} is absent)`)
  .action(async () => {
    const { DEFAULT_POLICY_TEXT } = await import('../policy/default-policy.js');
    process.stdout.write(DEFAULT_POLICY_TEXT);
  });

const bench = program.command('bench').description('measure qosd on this machine (prints figures; never part of the tests)');
/** A benchmark's progress lines go to stderr, unless it prints JSON. */
function benchProgress(json: boolean | undefined): ((m: string) => void) | undefined {
  return json ? undefined : (m) => process.stderr.write(`${m}\n`);
}
/** --check: exit 1 if a target is missed. */
function checkTargets(check: boolean | undefined, targets: Record<string, { ok: boolean }>): void {
  if (check && !Object.values(targets).every((t) => t.ok)) process.exitCode = 1;
}
/** A bench subcommand with the options every benchmark has. */
function benchCommand(name: string, description: string, threads: { help: string; count: number; loadMs: number; loadHelp: string }): Command {
  return bench
    .command(name)
    .description(description)
    .option('--json', 'print one JSON object')
    .option('--threads <n>', threads.help, (v) => positiveInt(v, '--threads'), threads.count)
    .option('--load-ms <ms>', threads.loadHelp, (v) => positiveInt(v, '--load-ms'), threads.loadMs)
    .option('--check', 'exit 1 if a target is missed');
}

benchCommand('agent', 'what the agent adds to connect() and send(), against a bare C-to-C Unix socket round trip, and daemon decisions/s with a 1,000-rule policy',
  { help: 'concurrent agents for the decisions/s load', count: 16, loadMs: 3000, loadHelp: 'duration of the decisions/s load' })
  .option('--rounds <n>', 'connect rounds; figures are medians over rounds', (v) => positiveInt(v, '--rounds'), 7)
  .option('--send-rounds <n>', 'send-path runs per side, interleaved', (v) => positiveInt(v, '--send-rounds'), 11)
  .option('--connects <n>', 'connects per connect+close run', (v) => positiveInt(v, '--connects'), 10_000)
  .option('--sends <n>', 'sends per send-path run', (v) => positiveInt(v, '--sends'), 1_000_000)
  .action(async (o: { json?: boolean; rounds: number; sendRounds: number; connects: number; sends: number; threads: number; loadMs: number; check?: boolean }) => {
    const { benchAgent, formatAgentBench } = await import('../bench/agent.js');
    const r = await benchAgent({ ...o, progress: benchProgress(o.json) });
    print(o.json ? JSON.stringify(r, null, 2) : formatAgentBench(r));
    checkTargets(o.check, r.targets);
  });

benchCommand('policy', 'policy scripts end to end through the daemon: JavaScript and Safe Tcl decisions/s, what a script adds over the rules, and a deadline-hitting script beside rules-only clients',
  { help: 'concurrent agents', count: 32, loadMs: 2000, loadHelp: 'duration of each load' })
  .option('--rounds <n>', 'rounds; figures are medians over rounds', (v) => positiveInt(v, '--rounds'), 3)
  .action(async (o: { json?: boolean; rounds: number; threads: number; loadMs: number; check?: boolean }) => {
    const { benchPolicy } = await import('../bench/policy.js');
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
    const { benchHostile } = await import('../bench/hostile.js');
    const r = await benchHostile({ requests: o.requests, progress: benchProgress(o.json) });
    print(JSON.stringify(r, null, 2));
    checkTargets(o.check, r.targets);
  });

bench
  .command('ab')
  .description('two builds of the daemon with the same policy, in alternating load windows: decisions/s and CPU per Socket+Connect pair of each, and their ratio (judges a change on a machine whose speed drifts)')
  .requiredOption('--old <cli>', 'the old build\'s qos entry point (a checkout\'s dist/cli/main.js)')
  .option('--new <cli>', 'the new build\'s entry point (default: this one)')
  .requiredOption('--policy <file>', 'policy file for both (its directory is copied, so a script beside it comes along)')
  .option('--new-policy <file>', 'another policy for the new build')
  .option('--rounds <n>', 'rounds of one window each, alternating order', (v) => positiveInt(v, '--rounds'), 8)
  .option('--load-ms <ms>', 'length of each window', (v) => positiveInt(v, '--load-ms'), 1500)
  .option('--threads <n>', 'concurrent agents', (v) => positiveInt(v, '--threads'), 32)
  .option('--json', 'print one JSON object with every round')
  .action(async (o: { old: string; new?: string; policy: string; newPolicy?: string; rounds: number; loadMs: number; threads: number; json?: boolean }) => {
    for (const f of [o.old, o.new, o.policy, o.newPolicy]) if (f !== undefined && !existsSync(f)) throw new QosError('QOS_ERR_USAGE', `no such file: ${f}`);
    const { benchAb } = await import('../bench/ab.js');
    const { QOS_CLI } = await import('../daemon/child.js');
    const r = await benchAb({
      oldCli: resolve(o.old), newCli: o.new ? resolve(o.new) : QOS_CLI, oldPolicy: resolve(o.policy), newPolicy: resolve(o.newPolicy ?? o.policy),
      rounds: o.rounds, loadMs: o.loadMs, threads: o.threads, progress: benchProgress(o.json),
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
    const { benchRules, formatRulesBench } = await import('../bench/rules.js');
    const r = await benchRules({ ...o, progress: benchProgress(o.json) });
    print(o.json ? JSON.stringify(r, null, 2) : formatRulesBench(r));
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
    const { benchCharacterize } = await import('../bench/characterize.js');
    const r = await benchCharacterize({ ...o, progress: benchProgress(o.json) });
    print(JSON.stringify(r, null, 2));
    checkTargets(o.check, r.targets);
  });

program
  .command('characterize')
  .description("token-bucket curves of flows, from a capture file (pcap or pcapng) or captured live: for each rate r the least bucket b the flow conforms to, the knee of the curve, and a suggested TSpec (docs/characterize.md)")
  .argument('[file]', 'a capture: tcpdump -w, or pcapng (not with --live)')
  .option('--flow <spec>', 'only these packets: field=value,... (proto, src, dst, sport, dport, host, port) or a flow key as printed, e.g. "udp 10.0.0.1:4000 > 10.0.0.2:5004"')
  .option('--app <name>', 'what the sockets of the programs with this name send (their 5-tuples from the kernel, now: with a file, the program must still be running)')
  .option('--rates <list>', 'rates to evaluate, comma-separated: bytes/s, or with a unit (bit, kbit, Mbit, Gbit, B, kB, MB, GB), e.g. 1.5Mbit (default: a grid from each flow\'s mean to its peak rate)')
  .option('--grid <n>', 'points of the default grid', (v) => positiveInt(v, '--grid'), 32)
  .option('--count', 'count packets, not bytes (b in packets, r in packets/s)')
  .option('--min-unit <bytes>', 'm: a smaller packet counts as m bytes', (v) => positiveInt(v, '--min-unit'))
  .option('--peak-window <ms>', 'window over which the peak rate p is measured', (v) => positiveInt(v, '--peak-window'), 10)
  .option('--json', 'print one JSON object')
  .option('--plot <file>', 'draw the largest flow\'s curve with its knee, and its traffic against the token bucket: file.svg, or file.png (needs Chromium)')
  .option('--live', 'capture with tcpdump instead of reading a file (needs root): what --flow or --app names, or every IP packet on --iface')
  .option('--iface <name>', 'with --live: the interface', 'any')
  .option('--netns <name>', 'with --live: capture (and look for --app) in this network namespace')
  .option('--duration <time>', 'with --live: how long to capture (e.g. 30s, 500ms, 2m)', '30s')
  .option('--refresh <time>', 'with --live: how often to print the on-line estimate', '30s')
  .option('--token-rate <rate>', 'with --live: the on-line bucket drains at this rate (e.g. 2Mbit) instead of the measured average')
  .option('--rate-window <time>', 'with --live: measure the average over this moving window instead of since the first packet')
  .option('--age <time>', 'with --live: how long the on-line estimate remembers a burst', '180s')
  .option('--hold <time>', 'with --live: how long a smaller estimate waits before it is re-advertised', '120s')
  .action(async (file: string | undefined, o: { flow?: string; app?: string; rates?: string; grid: number; count?: boolean; minUnit?: number; peakWindow: number; json?: boolean; plot?: string; live?: boolean; iface: string; netns?: string; duration: string; refresh: string; tokenRate?: string; rateWindow?: string; age: string; hold: string }) => {
    const { characterizeFile, flowFilter, parseRate } = await import('../characterize/offline.js');
    const { formatCharacterization, formatSnapshot } = await import('../characterize/format.js');
    const rates = o.rates?.split(',').map(parseRate);
    if (rates?.some((r) => !(r > 0))) throw new QosError('QOS_ERR_USAGE', '--rates: every rate must be above 0');
    const common = { rates, grid: o.grid, count: o.count, minUnit: o.minUnit, peakWindowS: o.peakWindow / 1000, cumulative: !!o.plot };
    let r: import('../characterize/offline.js').CharacterizeResult;
    if (o.flow && o.app) throw new QosError('QOS_ERR_USAGE', 'give --flow or --app, not both');
    const live = await import('../characterize/live.js');
    let socks: import('../characterize/live.js').AppSocket[] | undefined;
    if (o.app) {
      socks = live.appSockets(o.app, o.netns);
      if (!socks.length) throw new QosError('QOS_ERR_NOT_FOUND', `no socket of a program named "${o.app}"${o.netns ? ` in ${o.netns}` : ''} (ss -tunap)`);
    }
    const select = o.flow ? flowFilter(o.flow) : socks ? live.appSelect(socks) : undefined;
    if (o.live) {
      if (file) throw new QosError('QOS_ERR_USAGE', 'give a file or --live, not both');
      const filter = socks ? live.bpfForApp(socks) : o.flow ? live.bpfForFlow(o.flow) : 'ip or ip6';
      r = await live.characterizeLive({
        ...common, select, iface: o.iface, netns: o.netns, filter,
        durationS: duration(o.duration, '--duration'), refreshS: duration(o.refresh, '--refresh'),
        online: { ...(o.tokenRate ? { rate: parseRate(o.tokenRate) } : {}), ...(o.rateWindow ? { windowS: duration(o.rateWindow, '--rate-window') } : {}), ageS: duration(o.age, '--age') },
        holdS: duration(o.hold, '--hold'),
        onSnapshot: o.json ? undefined : (s) => print(formatSnapshot(s, o.count ? 'packets' : 'bytes')),
      });
    } else {
      if (!file) throw new QosError('QOS_ERR_USAGE', 'give a capture file, or --live');
      r = await characterizeFile(file, { ...common, select });
    }
    if (!r.flows.length) throw new QosError('QOS_ERR_NOT_FOUND', `${r.file}: no ${o.flow ? 'packet matches --flow' : o.app ? `packet from ${o.app}` : 'IP packet'}`);
    if (o.plot) {
      const { plotSvg, writePlot } = await import('../characterize/plot.js');
      writePlot(o.plot, plotSvg(r.flows[0]!, r.cumulative!, r.unit));
    }
    const { cumulative: _, ...json } = r;
    print(o.json ? JSON.stringify(json, null, 2) : formatCharacterization(r));
  });

/** A duration: 30s, 500ms, 2m, or bare seconds. */
function duration(v: string, name: string): number {
  const m = /^([0-9]*\.?[0-9]+)(ms|s|m)?$/.exec(v.trim());
  const n = m ? Number(m[1]) * (m[2] === 'ms' ? 0.001 : m[2] === 'm' ? 60 : 1) : NaN;
  if (!(n > 0)) throw new QosError('QOS_ERR_USAGE', `${name} takes a time such as 30s, 500ms or 2m, not "${v}"`);
  return n;
}

program
  .command('demo')
  .description("the paper's experiment, measured: an unmodified media application sends across a congested, precedence-queued link, without and then with the policy daemon, over IPv4 or IPv6 (needs root; builds and removes its own network namespaces)")
  .option('--app <name>', 'the media source: media (a video-like UDP stream + TCP call control) or iperf3 (iperf3 -u)', 'media')
  .option('--family <4|6>', 'IP version of the run: 4 or 6 (every host has both; the router classifies both)', '4')
  .option('--scheduler <kind>', "the router's queueing: wfq (weighted classes by precedence) or priority (strict)", 'wfq')
  .option('--weights <list>', 'wfq weights of precedence 0..7, comma-separated', '1,2,3,4,5,6,7,8')
  .option('--cycles <n>', 'cross-traffic bursts per run', (v) => positiveInt(v, '--cycles'), 4)
  .option('--on-ms <ms>', 'length of a burst', (v) => positiveInt(v, '--on-ms'), 2000)
  .option('--off-ms <ms>', 'pause between bursts', (v) => positiveInt(v, '--off-ms'), 2000)
  .option('--warmup-ms <ms>', 'media alone before the first burst', (v) => positiveInt(v, '--warmup-ms'), 2000)
  .option('--bottleneck <rate>', 'rate of the congested link (bits/s; k, M, G suffixes)', '10M')
  .option('--access <rate>', 'rate of the access links', '100M')
  .option('--queue <packets>', "packets each of the router's class queues holds", (v) => positiveInt(v, '--queue'), 100)
  .option('--kbps <n>', 'media rate in kbit/s', (v) => positiveInt(v, '--kbps'), 400)
  .option('--fps <n>', 'media frames per second', (v) => positiveInt(v, '--fps'), 25)
  .option('--json <file>', 'write every figure as JSON to FILE (- for standard output)')
  .option('--report <dir>', 'write a report into DIR: index.html (the table and charts, linking the images) and each chart as SVG; with Chromium installed, each chart as PNG too and the whole page as index.png')
  .action(async (o: { app: string; family: string; scheduler: string; weights: string; cycles: number; onMs: number; offMs: number; warmupMs: number; bottleneck: string; access: string; queue: number; kbps: number; fps: number; json?: string; report?: string }) => {
    if (o.app !== 'media' && o.app !== 'iperf3') throw new QosError('QOS_ERR_USAGE', `--app takes media or iperf3, not "${o.app}"`);
    if (o.family !== '4' && o.family !== '6') throw new QosError('QOS_ERR_USAGE', `--family takes 4 or 6, not "${o.family}"`);
    if (o.scheduler !== 'wfq' && o.scheduler !== 'priority') throw new QosError('QOS_ERR_USAGE', `--scheduler takes wfq or priority, not "${o.scheduler}"`);
    const weights = o.weights.split(',').map((w) => Number(w.trim()));
    if (weights.length !== 8 || weights.some((w) => !Number.isInteger(w) || w < 1 || w > 1000)) throw new QosError('QOS_ERR_USAGE', `--weights takes eight whole numbers 1..1000 (precedence 0 first), not "${o.weights}"`);
    const { runDemo } = await import('../demo/demo.js');
    const { formatDemo } = await import('../demo/table.js');
    const toStdout = o.json === '-';
    const r = await runDemo({
      app: o.app, family: o.family === '6' ? 6 : 4, scheduler: o.scheduler, weights, cycles: o.cycles, onMs: o.onMs, offMs: o.offMs, warmupMs: o.warmupMs,
      bottleneckBps: bitRate(o.bottleneck, '--bottleneck'), accessBps: bitRate(o.access, '--access'), queuePackets: o.queue, kbps: o.kbps, fps: o.fps,
      progress: (m) => process.stderr.write(`${m}\n`),
    });
    if (o.json) {
      const text = JSON.stringify(r, null, 2) + '\n';
      if (toStdout) process.stdout.write(text);
      else writeFileAtomic(o.json, text);
    }
    if (o.report) {
      const { writeReport } = await import('../demo/report.js');
      const files = await writeReport(r, o.report);
      process.stderr.write(`report: ${files.join(', ')}\n`);
    }
    if (!toStdout) print(formatDemo(r));
  });

program
  .command('agent-path')
  .description('print the path of libqosagent.so (for LD_PRELOAD or /etc/ld.so.preload)')
  .action(() => print(AGENT_LIBRARY));

program
  .command('manpage', { hidden: true })
  .description('print the qos(8) manual page, roff, generated from this help (the Debian package installs it)')
  .option('--date <date>', 'the date in the footer, YYYY-MM-DD (default: today)')
  .action(async (o: { date?: string }) => {
    if (o.date !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(o.date)) throw new QosError('QOS_ERR_USAGE', `--date takes YYYY-MM-DD, not "${o.date}"`);
    const { manPage, qosSections } = await import('./manpage.js');
    process.stdout.write(manPage(program, {
      name: 'qos', section: 8, source: `qosd ${PACKAGE_VERSION}`, date: o.date ?? new Date().toISOString().slice(0, 10),
      summary: 'quality of service for unmodified applications', sections: qosSections(),
    }));
  });

/** A group given by name (from /etc/group) or number. */
function groupId(v: string): number {
  if (/^\d+$/.test(v)) return Number(v);
  const gid = idEntries(readFileSync('/etc/group', 'utf8')).find(([name]) => name === v)?.[1];
  if (gid === undefined) throw new QosError('QOS_ERR_USAGE', `--admin-group: no group "${v}" in /etc/group`);
  return gid;
}

function positiveInt(v: string, name: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new QosError('QOS_ERR_USAGE', `${name} takes a positive whole number, not "${v}"`);
  return n;
}

function wholeNumber(v: string, name: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < 0) throw new QosError('QOS_ERR_USAGE', `${name} takes a whole number (0 or more), not "${v}"`);
  return n;
}

function niceValue(v: string): number | 'keep' {
  if (v === 'keep') return v;
  const n = Number(v);
  if (!Number.isInteger(n) || n < -20 || n > 19) throw new QosError('QOS_ERR_USAGE', `--nice takes -20..19 or "keep", not "${v}"`);
  return n;
}

/** A bit rate such as 10M, 100mbit, 1.5G or 64000 (bits per second). */
function bitRate(v: string, name: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)(?:bit|b|bps)?$/i.exec(v.trim());
  const n = m ? Number(m[1]) * ({ '': 1, k: 1e3, m: 1e6, g: 1e9 } as Record<string, number>)[m[2]!.toLowerCase()]! : NaN;
  if (!(n >= 64_000 && n <= 100e9)) throw new QosError('QOS_ERR_USAGE', `${name} takes a rate from 64k to 100G bits/s such as 10M or 100mbit, not "${v}"`);
  return n;
}

function print(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : s + '\n');
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exitCode = e.exitCode === 0 ? 0 : 64;
  } else {
    if (e instanceof QosError) {
      process.stderr.write(`qos: ${e.message}\n`);
      if (e.problems.length) process.stderr.write(formatProblems(e.problems) + '\n');
    } else {
      process.stderr.write(`qos: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    }
    process.exitCode = exitCodeFor(e);
  }
}
