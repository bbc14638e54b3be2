/* `qos bench fleet`: what a fleet (docs/fleet.md) costs, measured with a real etcd cluster
 * (e2e/etcd-cluster.ts: 3 members on loopback) and real daemons (`qos daemon --fleet`, `--kernel off
 * --tc off`, each in a temporary directory of its own).
 *
 * - converge_ms: for each push (alternating two generated policies, so each changes the text;
 *   fleet/admin.ts push, as `qos fleet push` writes it), the time from the transaction's answer to
 *   the moment the last daemon's status key says it runs that revision or a later one. Status
 *   is followed by one etcd watch on P/status/ (not polled): the resolution is the watch's.
 * - etcd_keys_per_node, watched_keys_per_node: the keys under the prefix, and etcd's own count
 *   of watchers (etcd_debugging_mvcc_watcher_total, summed over members), with the daemons
 *   running against before they started, per daemon.
 * - watch_bytes_per_update: the bytes etcd sent to its gRPC clients
 *   (etcd_network_client_grpc_sent_bytes_total, summed over members) from just before a push
 *   until every daemon reported it applied, per daemon. It includes the daemons' status writes'
 *   answers, and the status events this benchmark's own watch received (observer_bytes, counted
 *   by the watch, reported beside it).
 * - idle: the same counters over a window with no push: bytes each way, lease keep-alives
 *   and status writes (grpc_server_msg_received_total of LeaseKeepAlive and Put) per daemon.
 * - daemon RSS (median), etcd's database size before and after.
 *
 * Here every daemon shares this machine's CPUs, where in a fleet each node has its own, and a
 * push makes them all apply at once: the time is then mostly their CPU (converge_cpu_floor_ms
 * says how much). etcd (on machines of its own in a fleet) and this benchmark's own process
 * (the instrument) run at nice -15, above the daemons' -10, so neither waits behind them and
 * what is timed is the daemons. */

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, getPriority, loadavg, setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3, Watcher } from 'etcd3';
import { DaemonChild } from '../daemon/child.js';
import { cpuMs } from '../script/cpu.js';
import { percentile } from '../demo/analyze.js';
import { QosError } from '../errors.js';
import { readFleet, push } from '../fleet/admin.js';
import { fleetClient } from '../fleet/connect.js';
import { DEFAULT_PREFIX, DOC_KINDS, docKey, keysFor, statusPrefix } from '../fleet/keys.js';
import type { NodeStatus } from '../fleet/node.js';
import { checkPolicyOffLoop } from '../policy/compile.js';
import type { Target } from './agent.js';
import { EtcdCluster } from '../e2e/etcd-cluster.js';
import { Convergence, promMax, promSum } from './fleet-figures.js';
import { closeOnSignal, medianF } from './helpers.js';
import { generatePolicy } from './policy-gen.js';
import { spread, type Spread } from './tc-figures.js';

export interface FleetBenchOptions {
  daemons: number;
  pushes: number;
  members: number;
  /** groups each daemon is in (its keys: 2 kinds x (canary + node + groups + fleet)) */
  groups: number;
  /** rules of each generated policy */
  policyRules: number;
  /** seconds of the window with no push */
  idleS: number;
  /** the daemons' --fleet-lease, seconds */
  leaseS: number;
  progress?: (m: string) => void;
}

/** A push as measured. */
export interface PushFigures {
  revision: number; policy_bytes: number;
  /** commit to the last daemon's status saying it runs it */
  converge_ms: number;
  /** commit to this benchmark's own watch of the policy key getting it: etcd's delivery alone */
  delivery_ms: number;
  /** commit to the first daemon's status saying it runs it */
  first_node_ms: number;
  sent_bytes_per_node: number; observer_bytes_per_node: number;
  /** CPU each daemon used from just before the push until the last one applied it (median over daemons) */
  daemon_cpu_ms: number;
}

export interface FleetBenchResult {
  converge_ms_p50: number;
  converge_ms_p99: number;
  converge_ms_min: number;
  converge_ms_max: number;
  target_ms: number;
  meets_target: boolean;
  /** commit to the first daemon's status with it (median over pushes) */
  first_node_ms: Spread;
  /** commit to a watcher of the policy key (this benchmark's) getting it: etcd's part */
  delivery_ms: Spread;
  /** CPU a daemon used per push, median over daemons, spread over pushes: the apply (two
   * worker threads: the check, then the load) and its status write */
  daemon_cpu_ms_per_apply: Spread;
  /** daemons x daemon_cpu_ms_per_apply / CPUs: the least a push can take on this machine when
   * every daemon shares its CPUs (on a real fleet each node has its own) */
  converge_cpu_floor_ms: number;
  etcd_keys_per_node: number;
  watched_keys_per_node: number;
  /** what keys.ts keysFor says a node with these groups watches, beside the measured figure */
  watched_keys_per_node_by_keysfor: number;
  watch_streams_per_node: number;
  keys: { without_daemons: number; with_daemons: number; after_daemons_stopped: number };
  watchers: { without_daemons: number; with_daemons: number };
  watch_bytes_per_update: number;
  watch_bytes_per_update_min: number;
  watch_bytes_per_update_max: number;
  /** watch_bytes_per_update less observer_bytes_per_update, per push: what the daemons cost */
  watch_bytes_per_update_net: Spread;
  /** the bytes of the pushed policies (their median) */
  policy_bytes: number;
  /** watch_bytes_per_update_net less the policy's own bytes, per push: etcd's framing, the status
   * writes' answers, keep-alives in the window */
  overhead_bytes_per_update: Spread;
  /** of watch_bytes_per_update: the keys and values of the events this benchmark's own watches
   * received (every status update, and the policy once), per node; their framing is not in it */
  observer_bytes_per_update: Spread;
  /** a status key's value as the daemons write it (median over daemons) */
  status_value_bytes: number;
  idle: {
    seconds: number; sent_bytes_per_s_per_node: number; received_bytes_per_s_per_node: number; observer_bytes_per_s_per_node: number;
    lease_keepalives_per_s_per_node: number; status_puts_per_s_per_node: number;
    /** 1 / status_puts_per_s_per_node: how often a daemon rewrites its status at rest */
    status_every_s: number | null;
    /** revisions made in the window (each a status write), and the reads etcd answered (Range and Txn: none expected) */
    revisions: number; reads: number;
  };
  /** sessions a daemon began with etcd after its first (each reads every key again): none expected */
  daemon_reconnects: number;
  daemon_rss_mb_median: number;
  daemon_rss_mb_min: number;
  daemon_rss_mb_max: number;
  etcd_db_bytes_before: number;
  etcd_db_bytes_after: number;
  etcd_db_in_use_bytes_before: number;
  etcd_db_in_use_bytes_after: number;
  /** etcd's revision before the daemons started and after the last push (each write is one) */
  etcd_revision_before: number;
  etcd_revision_after: number;
  pushes: PushFigures[];
  targets: { converge_ms_p99: Target };
  setup: { daemons: number; pushes: number; members: number; groups_per_node: number; policy_rules: number; idle_s: number; lease_s: number; nice: { daemons: number; etcd: number; observer: number }; etcd: string; cpus: number; node: string; loadavg_before: number[]; loadavg_after: number[]; seconds: number };
}

const TARGET_MS = 2000;
/** daemons started at once: each takes a second of CPU or so, and must listen within 10 s */
const START_AT_ONCE = 4;
const PUSH_TIMEOUT_MS = 30_000;
/** etcd's and this process's priority: above the daemons' (qos daemon --nice, default -10) */
const ABOVE_DAEMONS = -15;

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new QosError('QOS_ERR_BENCH', `no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}

/** A process's nice value (its main thread's), from /proc/PID/stat's 19th field. */
function niceOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

/** The counters read from every member at once, for a delta. */
interface Counters { sent: number; received: number; keepalives: number; puts: number; reads: number; at: number }
function counters(texts: string[], at: number): Counters {
  return {
    sent: promSum(texts, 'etcd_network_client_grpc_sent_bytes_total'),
    received: promSum(texts, 'etcd_network_client_grpc_received_bytes_total'),
    keepalives: promSum(texts, 'grpc_server_msg_received_total', { grpc_service: 'etcdserverpb.Lease', grpc_method: 'LeaseKeepAlive' }),
    puts: promSum(texts, 'grpc_server_msg_received_total', { grpc_service: 'etcdserverpb.KV', grpc_method: 'Put' }),
    reads: promSum(texts, 'grpc_server_msg_received_total', { grpc_service: 'etcdserverpb.KV', grpc_method: 'Range' })
      + promSum(texts, 'grpc_server_msg_received_total', { grpc_service: 'etcdserverpb.KV', grpc_method: 'Txn' }),
    at,
  };
}

export async function benchFleet(o: FleetBenchOptions): Promise<FleetBenchResult> {
  const say = o.progress ?? (() => undefined);
  const began = performance.now();
  const loadBefore = loadavg().map((x) => round(x, 2));
  const etcdVersion = EtcdCluster.version();
  const dir = mkdtempSync(join(tmpdir(), 'qosd-bench-fleet-'));
  const niceWas = getPriority();
  try { setPriority(ABOVE_DAEMONS); } catch { /* not root: measured at the same priority, and setup says so */ }
  const niceObserver = getPriority();
  let etcd: EtcdCluster | null = null;
  const daemons: DaemonChild[] = [];
  let client: Etcd3 | null = null;
  let watcher: Watcher | null = null;
  let policyWatcher: Watcher | null = null;
  let closing: Promise<void> | null = null;
  const close = () => (closing ??= (async () => {
    await watcher?.cancel().catch(() => undefined);
    await policyWatcher?.cancel().catch(() => undefined);
    client?.close();
    await Promise.allSettled(daemons.map((d) => d.stop()));
    await etcd?.close();
    rmSync(dir, { recursive: true, force: true });
    try { setPriority(niceWas); } catch { /* lowering it back needs no privilege; raising would */ }
  })());
  const stopListening = closeOnSignal('fleet', 'its daemons, etcd and temporary files', close);
  try {
    // two policies of the same size and kind, different texts; checked as `qos fleet push` would
    const policies = [1, 2].map((seed) => JSON.stringify(generatePolicy(o.policyRules, [], seed), null, 1) + '\n');
    for (const [i, p] of policies.entries()) await checkPolicyOffLoop(p, join(dir, `policy-${i}.yaml`));

    say(`etcd: ${o.members} member(s) on 127.0.0.1`);
    const e = etcd = await EtcdCluster.start({ members: o.members as 1 | 3, nice: ABOVE_DAEMONS });
    client = fleetClient({ fleet: e.url });
    const prefix = DEFAULT_PREFIX;
    const target = { kind: 'policy' as const, level: 'fleet' as const };
    const nodes = Array.from({ length: o.daemons }, (_, i) => `b${i}`);
    const groups = Array.from({ length: o.groups }, (_, j) => `g${j}`);
    const conv = new Convergence(nodes);

    // every status update, as etcd sends it: when seen, which revision it runs, its bytes
    let observerBytes = 0;
    const statusBytes = new Map<string, number>();
    let failure: string | null = null;
    let wake: (() => void) | null = null;
    watcher = await client.watch().prefix(statusPrefix(prefix)).create();
    watcher.on('put', (kv) => {
      const at = performance.now();
      observerBytes += kv.key.length + kv.value.length;
      let s: NodeStatus;
      try { s = JSON.parse(kv.value.toString()) as NodeStatus; } catch { failure = `${kv.key.toString()} is not JSON`; wake?.(); return; }
      statusBytes.set(s.node, kv.value.length);
      if (s.refused?.policy) failure = `${s.node} refused ${s.refused.policy.key}@${s.refused.policy.revision}: ${s.refused.policy.error}`;
      conv.note(s.node, s.applied?.policy?.revision ?? 0, at);
      wake?.();
    });
    watcher.on('error', (e: Error) => { failure = `the status watch failed: ${e.message}`; wake?.(); });
    // the policy key as a daemon watches it: when etcd delivered each revision
    const delivered = new Map<number, number>();
    policyWatcher = await client.watch().key(docKey(prefix, target)).create();
    policyWatcher.on('put', (kv) => { delivered.set(Number(kv.mod_revision), performance.now()); observerBytes += kv.key.length + kv.value.length; });
    /** the moment the last node reported the target applied (performance.now()) */
    const converged = async (what: string, timeoutMs: number): Promise<number> => {
      const end = performance.now() + timeoutMs;
      for (;;) {
        const t = conv.done();
        if (t !== null) return t;
        if (failure) throw new QosError('QOS_ERR_BENCH', `${what}: ${failure}`);
        const left = end - performance.now();
        if (left <= 0) throw new QosError('QOS_ERR_BENCH', `${what}: node(s) ${conv.missing().join(', ')} did not report it applied within ${timeoutMs} ms`);
        await new Promise<void>((r) => { const timer = setTimeout(r, left); wake = () => { clearTimeout(timer); r(); }; });
        wake = null;
      }
    };
    const keyCount = () => client!.getAll().prefix(`${prefix}/`).count();

    // the fleet's policy before any daemon: the key space and watchers without them
    const first = await push(client, prefix, target, policies[0]!, { timeoutMs: PUSH_TIMEOUT_MS });
    conv.aim(first.revision);
    const keysWithout = await keyCount();
    const mBefore = await e.metrics();
    const watchersWithout = promSum(mBefore, 'etcd_debugging_mvcc_watcher_total');
    const streamsWithout = promSum(mBefore, 'etcd_debugging_mvcc_watch_stream_total');
    const dbBefore = promMax(mBefore, 'etcd_mvcc_db_total_size_in_bytes');
    const dbInUseBefore = promMax(mBefore, 'etcd_mvcc_db_total_size_in_use_in_bytes');
    const revisionBefore = (await readFleet(client, prefix)).revision;

    say(`${o.daemons} daemons (qos daemon --fleet ${e.url} --kernel off --tc off)`);
    for (let i = 0; i < nodes.length; i += START_AT_ONCE) {
      const batch = nodes.slice(i, i + START_AT_ONCE).map((node) => new DaemonChild(join(dir, node), null, [
        '--fleet', e.url, '--node', node, ...(groups.length ? ['--groups', groups.join(',')] : []), '--fleet-lease', `${o.leaseS}s`, '--kernel', 'off', '--tc', 'off']));
      daemons.push(...batch);
      await Promise.all(batch.map((d) => d.start()));
    }
    await converged(`the daemons' first policy (revision ${first.revision})`, 120_000);

    // a window with no push: what a fleet at rest costs etcd
    say(`idle: ${o.idleS} s with no push`);
    await new Promise((r) => setTimeout(r, 1000)); // the daemons' watches follow their first status
    const rev0 = (await readFleet(client, prefix)).revision; // (a read of every document: outside the window)
    const i0 = counters(await e.metrics(), performance.now());
    const ob0 = observerBytes;
    await new Promise((r) => setTimeout(r, o.idleS * 1000));
    const mIdle = await e.metrics();
    const i1 = counters(mIdle, performance.now());
    const idleObserved = observerBytes - ob0;
    const idleRevisions = (await readFleet(client, prefix)).revision - rev0;
    const idleDt = (i1.at - i0.at) / 1000;
    const perNodeS = (x: number) => round(x / idleDt / o.daemons, 3);
    const keysWith = await keyCount();
    const watchersWith = promSum(mIdle, 'etcd_debugging_mvcc_watcher_total');
    const streamsWith = promSum(mIdle, 'etcd_debugging_mvcc_watch_stream_total');

    say(`${o.pushes} pushes, alternating two policies of ${Buffer.byteLength(policies[0]!)} and ${Buffer.byteLength(policies[1]!)} bytes`);
    const pushes: PushFigures[] = [];
    for (let i = 0; i < o.pushes; i++) {
      const text = policies[(i + 1) % 2]!;
      const before = counters(await e.metrics(), performance.now());
      const obBefore = observerBytes;
      const cpuBefore = daemons.map((d) => cpuMs(`/proc/${d.proc.pid!}/stat`)!);
      const r = await push(client, prefix, target, text, { timeoutMs: PUSH_TIMEOUT_MS });
      const committed = performance.now();
      conv.aim(r.revision);
      const done = await converged(`push ${i + 1} (revision ${r.revision})`, PUSH_TIMEOUT_MS);
      const cpu = daemons.map((d, k) => cpuMs(`/proc/${d.proc.pid!}/stat`)! - cpuBefore[k]!);
      const after = counters(await e.metrics(), performance.now());
      const got = delivered.get(r.revision);
      if (got === undefined) throw new QosError('QOS_ERR_BENCH', `push ${i + 1}: every daemon applied revision ${r.revision}, but the benchmark's own watch of ${r.key} never got it`);
      pushes.push({
        revision: r.revision, policy_bytes: Buffer.byteLength(text), converge_ms: round(done - committed),
        delivery_ms: round(got - committed, 2), first_node_ms: round(conv.first()! - committed), daemon_cpu_ms: medianF(cpu),
        sent_bytes_per_node: round((after.sent - before.sent) / o.daemons), observer_bytes_per_node: round((observerBytes - obBefore) / o.daemons),
      });
    }

    const rss = daemons.map((d) => rssMb(d.proc.pid!));
    const daemonNice = medianF(daemons.map((d) => niceOf(d.proc.pid!)));
    const reconnects = daemons.reduce((n, d) => n + Math.max(0, d.log.split('fleet: connected to etcd').length - 2), 0);
    const mAfter = await e.metrics();
    const revisionAfter = (await readFleet(client, prefix)).revision;
    say('stopping the daemons');
    await Promise.all(daemons.map((d) => d.stop()));
    const keysAfterStop = await keyCount();

    const conv_ms = pushes.map((p) => p.converge_ms).sort((a, b) => a - b);
    const p99 = percentile(conv_ms, 99)!;
    const sent = spread(pushes.map((p) => p.sent_bytes_per_node), 1);
    const policyBytes = medianF(pushes.map((p) => p.policy_bytes));
    const cpuPerApply = spread(pushes.map((p) => p.daemon_cpu_ms), 0);
    return {
      converge_ms_p50: percentile(conv_ms, 50)!, converge_ms_p99: p99, converge_ms_min: conv_ms[0]!, converge_ms_max: conv_ms[conv_ms.length - 1]!,
      target_ms: TARGET_MS, meets_target: p99 <= TARGET_MS,
      first_node_ms: spread(pushes.map((p) => p.first_node_ms), 1), delivery_ms: spread(pushes.map((p) => p.delivery_ms), 2),
      daemon_cpu_ms_per_apply: cpuPerApply,
      converge_cpu_floor_ms: Math.round((o.daemons * cpuPerApply.median) / cpus().length),
      etcd_keys_per_node: round((keysWith - keysWithout) / o.daemons, 3),
      watched_keys_per_node: round((watchersWith - watchersWithout) / o.daemons, 3),
      watched_keys_per_node_by_keysfor: DOC_KINDS.flatMap((k) => keysFor(prefix, k, 'n', groups)).length,
      watch_streams_per_node: round((streamsWith - streamsWithout) / o.daemons, 3),
      keys: { without_daemons: keysWithout, with_daemons: keysWith, after_daemons_stopped: keysAfterStop },
      watchers: { without_daemons: watchersWithout, with_daemons: watchersWith },
      watch_bytes_per_update: sent.median, watch_bytes_per_update_min: sent.min, watch_bytes_per_update_max: sent.max,
      policy_bytes: policyBytes,
      watch_bytes_per_update_net: spread(pushes.map((p) => p.sent_bytes_per_node - p.observer_bytes_per_node), 1),
      overhead_bytes_per_update: spread(pushes.map((p) => p.sent_bytes_per_node - p.observer_bytes_per_node - p.policy_bytes), 1),
      observer_bytes_per_update: spread(pushes.map((p) => p.observer_bytes_per_node), 1),
      status_value_bytes: medianF([...statusBytes.values()]),
      idle: {
        seconds: round(idleDt, 2),
        sent_bytes_per_s_per_node: perNodeS(i1.sent - i0.sent), received_bytes_per_s_per_node: perNodeS(i1.received - i0.received),
        observer_bytes_per_s_per_node: perNodeS(idleObserved),
        lease_keepalives_per_s_per_node: perNodeS(i1.keepalives - i0.keepalives), status_puts_per_s_per_node: perNodeS(i1.puts - i0.puts),
        status_every_s: i1.puts > i0.puts ? round((idleDt * o.daemons) / (i1.puts - i0.puts), 2) : null,
        revisions: idleRevisions, reads: i1.reads - i0.reads,
      },
      daemon_reconnects: reconnects,
      daemon_rss_mb_median: round(medianF(rss)), daemon_rss_mb_min: round(Math.min(...rss)), daemon_rss_mb_max: round(Math.max(...rss)),
      etcd_db_bytes_before: dbBefore, etcd_db_bytes_after: promMax(mAfter, 'etcd_mvcc_db_total_size_in_bytes'),
      etcd_db_in_use_bytes_before: dbInUseBefore, etcd_db_in_use_bytes_after: promMax(mAfter, 'etcd_mvcc_db_total_size_in_use_in_bytes'),
      etcd_revision_before: revisionBefore, etcd_revision_after: revisionAfter,
      pushes,
      targets: { converge_ms_p99: { value: p99, limit: TARGET_MS, ok: p99 <= TARGET_MS } },
      setup: {
        daemons: o.daemons, pushes: o.pushes, members: o.members, groups_per_node: o.groups, policy_rules: o.policyRules, idle_s: o.idleS, lease_s: o.leaseS,         nice: { daemons: daemonNice, etcd: ABOVE_DAEMONS, observer: niceObserver },
        etcd: etcdVersion, cpus: cpus().length, node: process.version, loadavg_before: loadBefore, loadavg_after: loadavg().map((x) => round(x, 2)), seconds: round((performance.now() - began) / 1000),
      },
    };
  } finally {
    stopListening();
    await close();
  }
}

/** The short human summary (without --json). */
export function formatFleetBench(r: FleetBenchResult): string {
  const s = r.setup;
  return [
    `fleet of ${s.daemons} daemons on a ${s.members}-member etcd ${s.etcd}, ${s.pushes} pushes of a ${r.policy_bytes}-byte policy (${s.cpus} CPUs, load ${s.loadavg_before.join(' ')} -> ${s.loadavg_after.join(' ')})`,
    `converge: p50 ${r.converge_ms_p50} ms, p99 ${r.converge_ms_p99} ms (min ${r.converge_ms_min}, max ${r.converge_ms_max}); target p99 <= ${r.target_ms} ms: ${r.meets_target ? 'met' : 'MISSED'}`,
    `per push: etcd delivers it in ${r.delivery_ms.median} ms (median; max ${r.delivery_ms.max}), the first daemon runs it after ${r.first_node_ms.median} ms; a daemon's CPU per apply ${r.daemon_cpu_ms_per_apply.median} ms, so ${s.daemons} daemons on ${s.cpus} CPUs need ${r.converge_cpu_floor_ms} ms at least`,
    `per node: ${r.etcd_keys_per_node} key(s) in etcd, ${r.watched_keys_per_node} watched key(s) (keysFor: ${r.watched_keys_per_node_by_keysfor}), ${r.watch_streams_per_node} watch stream(s), status value ${r.status_value_bytes} bytes`,
    `etcd sent per node per push: ${r.watch_bytes_per_update} bytes (min ${r.watch_bytes_per_update_min}, max ${r.watch_bytes_per_update_max}); without this benchmark's own watches ${r.watch_bytes_per_update_net.median}: the policy ${r.policy_bytes} and ${r.overhead_bytes_per_update.median} more`,
    `idle, per node: ${r.idle.sent_bytes_per_s_per_node} B/s sent, ${r.idle.received_bytes_per_s_per_node} B/s received, ${r.idle.lease_keepalives_per_s_per_node} keep-alives/s, ${r.idle.status_puts_per_s_per_node} status writes/s, one every ${r.idle.status_every_s ?? '-'} s (over ${r.idle.seconds} s: ${r.idle.revisions} revisions, ${r.idle.reads} reads); ${r.daemon_reconnects} reconnect(s)`,
    `daemon RSS: median ${r.daemon_rss_mb_median} MB (${r.daemon_rss_mb_min}-${r.daemon_rss_mb_max}); etcd db ${r.etcd_db_bytes_before} -> ${r.etcd_db_bytes_after} bytes (in use ${r.etcd_db_in_use_bytes_before} -> ${r.etcd_db_in_use_bytes_after}), revision ${r.etcd_revision_before} -> ${r.etcd_revision_after}`,
  ].join('\n');
}
