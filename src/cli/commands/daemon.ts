/* `qos daemon`: its options, checked before anything starts, and its life: started, reloaded on
 * SIGHUP, stopped on SIGTERM or SIGINT within STOP_MS. */

import { Command } from 'commander';
import { QosError } from '../../errors.js';
import { DEFAULT_CT_MASK, hex32, parseCtMask } from '../../kernel/ctmark.js';
import { DEFAULT_AGENT_TIMEOUT_MS, MAX_AGENT_TIMEOUT_MS } from '../../daemon/generation.js';
import { adminSocket, agentSocket, choosePolicy, DEFAULT_NFT_TABLE, DEFAULT_POLICY_FILE, DEFAULT_RULES_FILE } from '../../paths.js';
import { duration, groupId, namedRates, niceValue, parseKeys, positiveInt } from '../options.js';

/** Registers `qos daemon`. */
export function daemonCommands(program: Command): void {
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
    .option('--agent-timeout-ms <ms>', `how long an agent waits for each answer before its program goes on unmarked (fail-open), for programs given no QOSD_TIMEOUT_MS and for setuid and file-capability programs always (1 to ${MAX_AGENT_TIMEOUT_MS})`, (v) => agentTimeout(v), DEFAULT_AGENT_TIMEOUT_MS)
    .option('--script-answer-ms <ms>', "how long a program's request waits for the script, queueing included, before the rules answer it (keep it below --agent-timeout-ms, or the agents' own QOSD_TIMEOUT_MS)", (v) => positiveInt(v, '--script-answer-ms'), 30)
    .option('--rules <file>', 'where the kernel rule set is kept (`qos rules`), in a directory only root (or the daemon\'s user) can write', DEFAULT_RULES_FILE)
    .option('--kernel <mode>', 'kernel rules (nftables): auto (if nft works), on (fail if not), off', 'auto')
    .option('--nft-table <name>', 'the nftables table qosd owns (family inet)', DEFAULT_NFT_TABLE)
    .option('--ct-mask <mask>', 'the bits of the connection mark (ct mark) the kernel table may use; it never changes the others (docs/kernel-rules.md, "The connection mark")', hex32(DEFAULT_CT_MASK))
    .option('--ct-generation-bits <n>', 'how many of those bits hold the generation of the rules (default: 8, or more when the mask has over 24 bits); the rest hold the rule number')
    .option('--ebpf <mode>', 'per-executable marking in the kernel (docs/ebpf.md): cgroup eBPF programs mark or refuse the connects and sends of programs named by the policy\'s exe rules, agent or not: auto (if the kernel takes them), on (fail if not), off', 'auto')
    .option('--ebpf-cgroup <dir>', 'the cgroup v2 directory the eBPF programs attach to: they act on the processes in it and below (default: the hierarchy\'s root, every process)')
    .option('--ebpf-rescan <time>', 'how often the files the exe patterns name are looked up again (a program upgraded is a new file)', (v) => duration(v, '--ebpf-rescan'), 10)
    .option('--stats <mode>', 'per-application statistics (docs/apps.md, qos top): on, the eBPF programs count every packet by program; off, they do not (a connect costs less; limits still work)', 'on')
    .option('--stats-labels <n>', 'per-application statistics (docs/apps.md): how many programs, users and units get a Prometheus label of their own; the rest are "other"', (v) => positiveInt(v, '--stats-labels'), 20)
    .option('--probe <mode>', 'probe what the host offers at start, as qos doctor does without its self-test, for qos status: on or off', 'on')
    .option('--tc <mode>', 'host traffic control (`qos tc`, docs/traffic-control.md): on, or off to leave every interface\'s queueing alone', 'on')
    .option('--rsvp <mode>', 'RSVP on this host (`qos rsvp send|reserve`, docs/rsvp.md): on opens a raw IP socket (protocol 46), off (the default) does not', 'off')
    .option('--rsvp-refresh <time>', 'RSVP: R, the refresh period (default 30s)', (v) => duration(v, '--rsvp-refresh'))
    .option('--rsvp-transport <raw|udp|both>', 'RSVP: raw IP protocol 46 (needs CAP_NET_RAW), the UDP encapsulation of RFC 2205 appendix C (port 1699; the first-hop router must run qos rsvp router --udp), or both', 'raw')
    .option('--rsvp-key <keyid=secret>', 'RSVP: an INTEGRITY key (RFC 2747, HMAC-MD5): its 48-bit key id as 12 hex digits, = and the secret (text, or hex after 0x); repeat for more. With keys every message sent is signed with the first, and one received with INTEGRITY must pass its check (unknown key id, wrong digest, replayed sequence number: dropped)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--rsvp-require-integrity', 'RSVP: with --rsvp-key, drop a message without INTEGRITY too')
    .option('--rsvp-link <dev=rate>', 'RSVP: this host\'s link rate (eth0=100Mbit; a veth has none): a reservation reaching this host as a sender is admitted against --rsvp-share of it before its flow is marked, and the link is put under traffic control at that rate; repeat for more. A link not named admits what the network admitted', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--rsvp-share <fraction>', 'RSVP: the share of a --rsvp-link reservations may take', '0.9')
    .option('--rsvp-auto-resv <off|cl|gs>', 'RSVP: answer every Path to this host that no session asked for with a Resv (seed 001\'s AutoRESV): Controlled Load, or Guaranteed with R from --rsvp-auto-delay; the TSpec is the sender\'s', 'off')
    .option('--rsvp-auto-delay <time>', 'RSVP: with --rsvp-auto-resv gs, the end-to-end delay W the reservation must keep (e.g. 50ms): R follows from the ADSPEC', (v) => duration(v, '--rsvp-auto-delay'))
    .option('--http <addr:port>', 'serve the web dashboard (docs/dashboard.md) on this address, e.g. 127.0.0.1:8080; `qos dashboard` prints the URL to log in with. Off unless given; an address beyond loopback works, with a warning in the log')
    .option('--metrics-interval <time>', 'how often the metrics history (GET /v1/metrics/history, the dashboard\'s Metrics page) takes a sample; it keeps 360, an hour at the default. For tests and tuning: at least 100ms', (v) => duration(v, '--metrics-interval'), 10)
    .option('--fleet <url>', 'take the policy and kernel rule sets from a fleet in etcd (docs/fleet.md): etcd://HOST:PORT[,HOST:PORT...]; not with --policy')
    .option('--fleet-prefix <prefix>', 'the fleet\'s key prefix in etcd', '/qosd')
    .option('--node <name>', 'this node\'s name in the fleet (default: the host name)')
    .option('--groups <a,b>', 'the fleet groups this node is in, highest precedence first: a group\'s document is above the fleet\'s, below the node\'s', '')
    .option('--fleet-ca <file>', 'TLS to etcd: the CA of its servers\' certificates')
    .option('--fleet-cert <file>', 'TLS to etcd: this node\'s client certificate (its CN is its etcd user with client-certificate auth)')
    .option('--fleet-key <file>', 'TLS to etcd: the client certificate\'s private key')
    .option('--fleet-lease <time>', 'how long this node\'s status key outlives it in etcd if it dies', (v) => duration(v, '--fleet-lease'), 10)
    .option('--fleet-status-interval <time>', 'how often this node rewrites its status in etcd with fresh figures (agents, decisions/s); a change of what it runs is written at once', (v) => duration(v, '--fleet-status-interval'), 30)
    .option('--fleet-retry-max <time>', 'the longest wait between attempts to reach etcd once it is lost (the wait starts at 250ms and doubles)', (v) => duration(v, '--fleet-retry-max'), 10)
    .option('--admin-group <group>', 'a group (name or gid) whose members may use the admin API besides root (default: root only)')
    .option('--max-connections-per-user <n>', 'agent connections one user other than root may hold (default: a quarter of the bound in all, at most 2048)', (v) => positiveInt(v, '--max-connections-per-user'))
    .option('--max-connections <n>', 'agent connections in all (default: half the descriptor limit, at most 32768; a tenth kept for root)', (v) => positiveInt(v, '--max-connections'))
    .option('--max-flows-per-user <n>', "flow-table entries one user may hold; past it the user's oldest go", (v) => positiveInt(v, '--max-flows-per-user'), 65536)
    .option('--max-flows <n>', 'flow-table entries in all; past it new flows are decided but not remembered', (v) => positiveInt(v, '--max-flows'), 1_000_000)
    .action(async (o: { socket: string; admin: string; policy?: string; logLevel: string; nice?: number | 'keep'; scriptWorkers?: number; scriptDeadlineMs: number; scriptMemoryMb: number; scriptAnswerMs: number; agentTimeoutMs: number; scriptNice: number | 'keep'; rules: string; kernel: string; ebpf: string; ebpfCgroup?: string; ebpfRescan: number; stats: string; statsLabels: number; probe: string; nftTable: string; ctMask: string; ctGenerationBits?: string; tc: string; rsvp: string; rsvpRefresh?: number; rsvpTransport: string; rsvpKey: string[]; rsvpRequireIntegrity?: boolean; rsvpLink: string[]; rsvpShare: string; rsvpAutoResv: string; rsvpAutoDelay?: number;
      http?: string; metricsInterval: number; fleet?: string; fleetPrefix: string; node?: string; groups: string; fleetCa?: string; fleetCert?: string; fleetKey?: string; fleetLease: number; fleetRetryMax: number; fleetStatusInterval: number; adminGroup?: string; maxConnectionsPerUser?: number; maxConnections?: number; maxFlowsPerUser: number; maxFlows: number }) => {
      if (o.kernel !== 'auto' && o.kernel !== 'on' && o.kernel !== 'off') throw new QosError('QOS_ERR_USAGE', `--kernel takes auto, on or off, not "${o.kernel}"`);
      if (o.ebpf !== 'auto' && o.ebpf !== 'on' && o.ebpf !== 'off') throw new QosError('QOS_ERR_USAGE', `--ebpf takes auto, on or off, not "${o.ebpf}"`);
      if (o.stats !== 'on' && o.stats !== 'off') throw new QosError('QOS_ERR_USAGE', `--stats takes on or off, not "${o.stats}"`);
      if (o.probe !== 'on' && o.probe !== 'off') throw new QosError('QOS_ERR_USAGE', `--probe takes on or off, not "${o.probe}"`);
      if (!(o.ebpfRescan >= 0.1 && o.ebpfRescan <= 86400)) throw new QosError('QOS_ERR_USAGE', '--ebpf-rescan is from 100ms to 24h');
      if (!/^[A-Za-z_][\w-]{0,63}$/.test(o.nftTable)) throw new QosError('QOS_ERR_USAGE', `--nft-table takes a name of letters, digits, _ and -, not "${o.nftTable}"`);
      if (o.tc !== 'on' && o.tc !== 'off') throw new QosError('QOS_ERR_USAGE', `--tc takes on or off, not "${o.tc}"`);
      if (o.rsvp !== 'on' && o.rsvp !== 'off') throw new QosError('QOS_ERR_USAGE', `--rsvp takes on or off, not "${o.rsvp}"`);
      if (!['raw', 'udp', 'both'].includes(o.rsvpTransport)) throw new QosError('QOS_ERR_USAGE', `--rsvp-transport takes raw, udp or both, not "${o.rsvpTransport}"`);
      if (o.metricsInterval < 0.1) throw new QosError('QOS_ERR_USAGE', `--metrics-interval is at least 100ms, not ${o.metricsInterval * 1000} ms`);
      const ctMark = parseCtMask(o.ctMask, o.ctGenerationBits);
      const dashboard = o.http === undefined ? undefined : (await import('../../dashboard/server.js')).parseListen(o.http);
      const rsvpKeys = parseKeys(o.rsvpKey, '--rsvp-key');
      if (o.rsvpRequireIntegrity && !rsvpKeys.size) throw new QosError('QOS_ERR_USAGE', '--rsvp-require-integrity needs an --rsvp-key');
      const rsvpShare = Number(o.rsvpShare);
      if (!(rsvpShare > 0 && rsvpShare <= 1)) throw new QosError('QOS_ERR_USAGE', `--rsvp-share is a fraction above 0 and at most 1, not "${o.rsvpShare}"`);
      const autoService = ({ off: null, cl: 'CL', gs: 'GS' } as const)[o.rsvpAutoResv.toLowerCase() as 'off' | 'cl' | 'gs'];
      if (autoService === undefined) throw new QosError('QOS_ERR_USAGE', `--rsvp-auto-resv takes off, cl or gs, not "${o.rsvpAutoResv}"`);
      if (autoService === 'GS' && o.rsvpAutoDelay === undefined) throw new QosError('QOS_ERR_USAGE', '--rsvp-auto-resv gs needs --rsvp-auto-delay (the delay W the reservation must keep, e.g. 50ms)');
      if (o.tc === 'off' && o.rsvpLink.length) throw new QosError('QOS_ERR_USAGE', '--rsvp-link puts the link under traffic control: it needs --tc on');
      const rsvpLinks = new Map(Object.entries(namedRates(o.rsvpLink, '--rsvp-link')));
      // refused before anything starts: the daemon reads and rewrites it as root (secure-path.ts)
      const { checkTrustedPath } = await import('../../secure-path.js');
      checkTrustedPath(o.rules, 'the kernel rule store');
      let fleet;
      if (o.fleet !== undefined) {
        if (o.policy !== undefined) throw new QosError('QOS_ERR_USAGE', '--fleet and --policy: a fleet node runs the fleet\'s policy (qos fleet push), not a file of its own');
        const { checkName, normPrefix, parseFleet } = await import('../../fleet/keys.js');
        parseFleet(o.fleet);
        const { hostname } = await import('node:os');
        const groups = o.groups.split(',').map((g) => g.trim()).filter(Boolean).map((g) => checkName('--groups: group', g));
        if (new Set(groups).size !== groups.length) throw new QosError('QOS_ERR_USAGE', `--groups names a group twice: ${o.groups}`);
        if (!(o.fleetLease >= 2 && o.fleetLease <= 3600)) throw new QosError('QOS_ERR_USAGE', '--fleet-lease is from 2s to 1h');
        if (!(o.fleetStatusInterval >= 1 && o.fleetStatusInterval <= 3600)) throw new QosError('QOS_ERR_USAGE', '--fleet-status-interval is from 1s to 1h');
        if (!(o.fleetRetryMax >= 0.25 && o.fleetRetryMax <= 3600)) throw new QosError('QOS_ERR_USAGE', '--fleet-retry-max is from 250ms to 1h');
        fleet = {
          fleet: o.fleet, prefix: normPrefix(o.fleetPrefix), node: checkName('--node', o.node ?? hostname().split('.')[0]!), groups,
          ca: o.fleetCa, cert: o.fleetCert, key: o.fleetKey, leaseTtlS: Math.round(o.fleetLease), retryMaxMs: Math.round(o.fleetRetryMax * 1000), statusEveryMs: Math.round(o.fleetStatusInterval * 1000),
        };
      } else if (o.groups) throw new QosError('QOS_ERR_USAGE', '--groups is for a fleet node: give --fleet too');
      const chosen = o.fleet !== undefined ? { file: null, origin: 'fleet' as const } : choosePolicy(o.policy);
      const { Daemon } = await import('../../daemon/daemon.js');
      const agentLimits = {
        ...(o.maxConnections ? { connections: o.maxConnections, rootReserve: Math.max(1, Math.floor(o.maxConnections / 10)) } : {}),
        ...(o.maxConnectionsPerUser ? { perUser: o.maxConnectionsPerUser } : {}),
      };
      const d = new Daemon({
        fleet, dashboard, agentLimits, metricsIntervalMs: Math.round(o.metricsInterval * 1000), maxFlows: o.maxFlows, maxFlowsPerUser: o.maxFlowsPerUser, adminGroup: o.adminGroup === undefined ? undefined : groupId(o.adminGroup),
        kernel: { rulesFile: o.rules, table: o.nftTable, mode: o.kernel, ctMark }, ebpf: { mode: o.ebpf, ...(o.ebpfCgroup ? { cgroup: o.ebpfCgroup } : {}), rescanMs: Math.round(o.ebpfRescan * 1000), stats: o.stats === 'on', statsLabels: o.statsLabels }, probe: o.probe === 'on', trafficControl: o.tc === 'on', rsvp: o.rsvp === 'on' ? {
          ...(o.rsvpRefresh ? { refreshMs: o.rsvpRefresh * 1000 } : {}), transport: o.rsvpTransport as 'raw' | 'udp' | 'both', ...(rsvpKeys.size ? { keys: rsvpKeys, requireIntegrity: o.rsvpRequireIntegrity ?? false } : {}),
          links: rsvpLinks, share: rsvpShare, autoResv: autoService ? { service: autoService, delayS: o.rsvpAutoDelay ?? null } : null,
        } : undefined,
        socket: o.socket, admin: o.admin, agentTimeoutMs: o.agentTimeoutMs, policy: chosen.file ?? undefined, policyOrigin: chosen.origin, logLevel: o.logLevel, nice: o.nice === 'keep' ? null : o.nice,
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
}

/** How long the daemon may take to stop after SIGTERM or SIGINT. */
const STOP_MS = 2000;

/** --agent-timeout-ms: whole milliseconds an agent takes (as QOSD_TIMEOUT_MS). */
function agentTimeout(v: string): number {
  const n = positiveInt(v, '--agent-timeout-ms');
  if (n > MAX_AGENT_TIMEOUT_MS) throw new QosError('QOS_ERR_USAGE', `--agent-timeout-ms is at most ${MAX_AGENT_TIMEOUT_MS}, not ${n}`);
  return n;
}
