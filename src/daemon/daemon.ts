/* `qos daemon`: the table of the daemon's components (component.ts), in the order they start:
 * the running policy, the kernel rules, the flow table, the agent server, the decision log,
 * the kernel's DSCP counters and the metrics history, and the daemon's own status and
 * metrics; then the admin API over all their routes. */

import { setPriority } from 'node:os';
import { getHeapSpaceStatistics } from 'node:v8';
import { dirname, join } from 'node:path';
import { pino, type Logger } from 'pino';
import { systemClock, type Clock, type Timer } from '../clock.js';
import { Components, type Component } from '../component.js';
import { DEFAULT_NFT_TABLE, DEFAULT_RULES_FILE, type PolicyOrigin } from '../paths.js';
import { PROTOCOL_VERSION } from '../protocol/messages.js';
import type { SandboxLimits } from '../script/js-sandbox.js';
import { rulesApi } from '../kernel/api.js';
import { ctMark, DEFAULT_CT_MASK, type CtMark } from '../kernel/ctmark.js';
import { DSCP_HOOK, DscpCounters } from '../kernel/dscp-counters.js';
import { KernelRules, type KernelMode } from '../kernel/manager.js';
import { EbpfMarking, type EbpfMode } from '../ebpf/marking.js';
import { appsCount, appsDimension } from '../ebpf/apps.js';
import { policyLimits } from '../ebpf/limits.js';
import { probeHost, summarize, type Check } from '../doctor/probes.js';
import { RsvpAttach } from '../rsvp/attach.js';
import { RsvpHost } from '../rsvp/host.js';
import { tcRoutes } from '../tc/api.js';
import { TcAttach } from '../tc/attach.js';
import { TrafficControl } from '../tc/control.js';
import { TcLinks } from '../tc/links.js';
import { LinkWatch } from '../net/link-watch.js';
import { asksTc } from '../tc/request.js';
import type { PolicyDoc } from '../policy/schema.js';
import { CharacterizeApi } from '../characterize/api.js';
import { explainRoutes } from '../explain/api.js';
import { DashboardServer } from '../dashboard/server.js';
import { tokenFileFor } from '../dashboard/token.js';
import { AdminServer } from './admin.js';
import { AgentServer } from './agents.js';
import { BatchTime } from './batch-time.js';
import { Decider } from './decide.js';
import { DecisionLog } from './decision-log.js';
import { FlowEvents } from './flow-events.js';
import { FlowTable } from './flows.js';
import { DEFAULT_AGENT_TIMEOUT_MS } from './generation.js';
import { IdentityResolver, raiseNofile, startTime } from './identity.js';
import { limitsFor, type AgentLimits } from './shares.js';
import { Metrics } from './metrics.js';
import { MetricsHistory } from './metrics-history.js';
import { RunningPolicy, type ReloadResult } from './running-policy.js';
import { DEFAULT_POLICY_TEXT } from '../policy/default-policy.js';
import { parseRuleSet } from '../kernel/manager.js';
import { systemNames } from '../kernel/rules.js';
import type { FleetConnection } from '../fleet/connect.js';
import { FleetNode, fleetPolicyFile } from '../fleet/node.js';
import { keepLoaderWorker } from '../policy/compile.js';

export const DEFAULT_AGENT_SOCKET = '/run/qosd/agent.sock';
export const DEFAULT_ADMIN_SOCKET = '/run/qosd/admin.sock';
/** The nice value the daemon takes at start (see raisePriority). */
export const DEFAULT_NICE = -10;

export interface DaemonOptions {
  socket: string;
  admin: string;
  policy?: string;
  /** how `policy` was chosen, for the log and `qos status` (default: 'option' with a policy) */
  policyOrigin?: PolicyOrigin;
  logLevel?: string;
  log?: Logger;
  /** Scheduling priority to take at start (nice value); null leaves it alone. */
  nice?: number | null;
  /** The deadline agents give each request, published in the generation file (generation.ts):
   * for programs given no QOSD_TIMEOUT_MS, and for privileged ones always (default 50 ms). */
  agentTimeoutMs?: number;
  /** Worker threads for a JavaScript policy script, and each call's limits. */
  scriptWorkers?: number;
  scriptLimits?: Partial<SandboxLimits>;
  sweepMs?: number;
  /** how often the metrics history takes a sample (`--metrics-interval`; default 10 s) */
  metricsIntervalMs?: number;
  /** time for the daemon's timers (default: the system's; tests give a manual clock) */
  clock?: Clock;
  /** Kernel rules (nftables): where the rule set is stored, the table, whether to use it, and
   * the bits of the connection mark it may use (default: DEFAULT_CT_MASK). */
  kernel?: { rulesFile: string; table: string; mode: KernelMode; ctMark?: CtMark };
  /** Per-executable marking by cgroup eBPF programs (ebpf/, docs/ebpf.md): off unless given
   * (the CLI's default is auto); the cgroup v2 directory they attach to (default: the root). */
  ebpf?: { mode: EbpfMode; cgroup?: string; rescanMs?: number; stats?: boolean; statsLabels?: number };
  /** Probe what the host offers (doctor/probes.ts) once all runs, for `qos status` (default off;
   * the CLI's default is on). */
  probe?: boolean;
  /** Bounds on agent connections (default: from the descriptor limit, see shares.ts). */
  agentLimits?: Partial<AgentLimits>;
  /** Flow-table bounds: entries in all, and per user (their oldest go past it). */
  maxFlows?: number;
  maxFlowsPerUser?: number;
  /** gid whose members may use the admin API besides root and the daemon's own user. */
  adminGroup?: number;
  /** The web dashboard (dashboard/): where it listens (`--http ADDR:PORT`); off unless given. */
  dashboard?: { host: string; port: number };
  /** The fleet (fleet/, docs/fleet.md): policy and kernel rule sets from etcd, status back;
   * `dir`: its state (default: fleet/ beside the rule store). With it, the policy file is the
   * fleet's, and the admin API cannot replace it. */
  fleet?: FleetConnection & { prefix: string; node: string; groups: string[]; dir?: string; leaseTtlS?: number; statusEveryMs?: number; retryMaxMs?: number };
  /** Host traffic control (tc/): off leaves every interface's queueing alone (default on). */
  trafficControl?: boolean;
  /** RSVP on this host (rsvp/host.ts): senders and reservations through the admin API (default off:
   * it opens a raw IP socket) */
  rsvp?: {
    refreshMs?: number; transport?: 'raw' | 'udp' | 'both'; keys?: Map<string, Uint8Array>; requireIntegrity?: boolean;
    /** this host's links (bytes/s) and the share reservations may take (--rsvp-link, --rsvp-share) */
    links?: Map<string, number>; share?: number;
    /** AutoRESV for Paths to this host nobody registered for (--rsvp-auto-resv, --rsvp-auto-delay) */
    autoResv?: { service: 'CL' | 'GS'; delayS: number | null } | null;
  };
}

/** Descriptors the daemon asks for at start; agent connections get half (shares.ts). */
export const NOFILE_WANTED = 65_536;

export class Daemon {
  readonly log: Logger;
  readonly metrics = new Metrics();
  readonly flows: FlowTable;
  readonly components = new Components();
  private readonly clock: Clock;
  private readonly started = Date.now();
  private readonly policy: RunningPolicy;
  private readonly kernel: KernelRules;
  /** host traffic control, unless turned off */
  readonly tc: TrafficControl | undefined;

  constructor(private readonly o: DaemonOptions) {
    this.clock = o.clock ?? systemClock;
    const log = this.log = o.log ?? pino({ level: o.logLevel ?? 'info', base: { svc: 'qosd' } });
    const { metrics, clock } = this;
    const sweepMs = o.sweepMs ?? 10_000;
    const ko = o.kernel ?? { rulesFile: DEFAULT_RULES_FILE, table: DEFAULT_NFT_TABLE, mode: 'auto' as const };
    const kernel = this.kernel = new KernelRules({ ...ko, ctMark: ko.ctMark ?? ctMark(DEFAULT_CT_MASK), log });
    const ebpf = new EbpfMarking({ mode: 'off', ...o.ebpf, log, clock, table: ko.table, registry: metrics.registry });
    // set below: the parts that follow flows do so only while a policy may ask for them
    let followFlows: ((doc: PolicyDoc) => void) | undefined;
    const fleetDir = o.fleet ? o.fleet.dir ?? join(dirname(ko.rulesFile), 'fleet') : null;
    // a fleet node takes a pushed policy whenever it comes: its loader stays warm
    if (o.fleet) keepLoaderWorker();
    const policy = this.policy = new RunningPolicy({
      ...(o.fleet ? { file: fleetPolicyFile(fleetDir!, DEFAULT_POLICY_TEXT), origin: 'fleet' as const, managedBy: `the fleet (${o.fleet.fleet}, ${o.fleet.prefix})` } : { file: o.policy, origin: o.policyOrigin }), socket: o.socket, agentTimeoutMs: o.agentTimeoutMs, versionsDir: join(dirname(ko.rulesFile), 'policy-versions'), scriptWorkers: o.scriptWorkers, scriptLimits: o.scriptLimits,
      accept: async (doc) => {
        // the eBPF maps first: a generation written is put back if the kernel rules refuse
        const before = policy.doc;
        ebpf.setPolicy(doc);
        try { await kernel.setPolicy(doc); } catch (e) { try { ebpf.setPolicy(before); } catch { /* the status says */ } throw e; }
        followFlows?.(doc);
      }, metrics, log, clock,
    });
    // the flow-event hub (flow-events.ts): parts that follow flows subscribe to flows.events
    const events = new FlowEvents((err, e) => log.error({ err, event: e.kind, pid: e.flow.pid, fd: e.flow.fd }, 'a flow-event subscriber failed'));
    // one time per batch of agent messages, for the flow table and the decider (batch-time.ts)
    const time = new BatchTime();
    const flows = this.flows = new FlowTable(time.now, o.maxFlows, o.maxFlowsPerUser, events);
    const identities = new IdentityResolver();
    const decisions = new DecisionLog({
      onDropped: (n) => metrics.followerDropped.inc(n),
      // the level is the one given at start (--log-level): asked once, not per decision
      debug: log.isLevelEnabled('debug') ? (r) => log.debug({ decision: r }, 'decision') : undefined,
    });
    let agents: AgentServer | undefined;
    const c = this.components;
    c.add(policy);
    c.add<Component>({
      name: 'kernel',
      start: () => kernel.start(policy.doc),
      stop: () => kernel.stop(),
      status: () => ({ kernel: kernel.status() }),
      routes: [{
        method: '*', path: '/v1/rules', prefix: true, body: true,
        handle: async (r) => { const a = await rulesApi(kernel, r.method, r.path, r.body); return { status: a.status, json: a.body }; },
      }],
    });
    // what the host offers (qos doctor's probes, without its self-test), once everything runs:
    // in the background, so the daemon answers meanwhile
    let probed: { at: string; checks: Check[] } | null = null, probing = false;
    c.add<Component>({
      name: 'doctor',
      running: () => {
        if (!o.probe) return;
        probing = true;
        // (its eBPF part is the ebpf component's: attached, or why not)
        void probeHost({ ebpf: false }).then((checks) => {
          probed = { at: new Date().toISOString(), checks };
          const sum = summarize(checks);
          if (sum.ok) log.info({ not_available: sum.not_available, optional_missing: sum.optional_missing }, 'host probe: everything qosd needs works here (qos doctor)');
          else log.warn({ needed_missing: sum.needed_missing }, 'host probe: some things qosd needs do not work here (qos doctor)');
        }, (err: unknown) => log.error({ err }, 'host probe failed')).finally(() => { probing = false; });
      },
      status: () => ({ doctor: probed ? { checked_at: probed.at, ...summarize(probed.checks) } : { checked_at: null, probing } }),
    });
    // the interfaces as they come and go (net/link-watch.ts): one watcher for every part that
    // follows them, started before them: traffic control (tc/links.ts), the eBPF limits' filters
    const links = o.trafficControl !== false || (o.ebpf?.mode ?? 'off') !== 'off' ? c.add(new LinkWatch({ log, clock })) : null;
    {
      // a socket the agent's decision puts under a limit gets its tag (ebpf/limits.ts)
      let unsubscribe: (() => void) | null = null;
      // an interface that appears (or is renamed) gets the limits' filters at once; one that goes
      // leaves their list
      let offLinks: (() => void) | undefined;
      followFlows = (doc) => {
        const wants = ebpf.attached && policyLimits(doc).length > 0;
        if (wants && !unsubscribe) unsubscribe = events.subscribe(ebpf.limits.onEvent);
        else if (!wants && unsubscribe) { unsubscribe(); unsubscribe = null; }
      };
      c.add<Component>({
        name: 'ebpf',
        start: async () => {
          await ebpf.start(policy.doc);
          followFlows!(policy.doc);
          offLinks = links?.subscribe((e) => { if (e.kind === 'added' || e.kind === 'renamed' || e.kind === 'removed') ebpf.limits.refresh(); });
        },
        stop: async () => { offLinks?.(); unsubscribe?.(); await ebpf.stop(); },
        status: () => ebpf.status(),
        routes: [{ method: 'GET', path: '/v1/apps', handle: (r) => ({ json: ebpf.apps(appsDimension(r.url.searchParams.get('by')), appsCount(r.url.searchParams.get('n'))) }) }],
      });
    }
    if (o.trafficControl !== false) {
      // its own table beside the kernel rules' (qosd: qosd_tc), and beside the admin socket
      // the interfaces it is changing, for the next daemon if this one is killed
      const tc = this.tc = new TrafficControl(undefined, log, { table: `${ko.table}_tc`, stateFile: join(dirname(o.admin), 'tc-state.json'), links: links! });
      const tcLinks = new TcLinks(tc, links!, log);
      const attach = new TcAttach(tc, undefined, log);
      // every flow event costs its subscribers' time: only a policy whose rules or script may
      // ask for a flow has the attacher follow them
      let unsubscribe: (() => void) | null = null;
      const before = followFlows;
      followFlows = (doc) => {
        before?.(doc);
        const wants = doc.script !== undefined || doc.rules.some((r) => asksTc(r.action)) || (doc.default !== undefined && asksTc(doc.default));
        if (wants && !unsubscribe) unsubscribe = events.subscribe(attach.onEvent);
        else if (!wants && unsubscribe) { unsubscribe(); unsubscribe = null; }
      };
      c.add<Component>({
        name: 'tc',
        start: async () => { await tc.start(); tcLinks.start(); followFlows!(policy.doc); },
        stop: async () => { unsubscribe?.(); await tcLinks.stop(); await tc.stop(); },
        status: () => ({ tc: { ...tc.status(), ...tcLinks.status(), sockets_attached: attach.attachedTotal, sockets_not_attached: attach.failed, sockets_over_user_bound: attach.overLimit } }),
        routes: tcRoutes(tc),
      });
    }
    if (o.rsvp) {
      // the policy's `reserve` (rsvp/attach.ts) follows flows only while a rule or script may ask for it
      let attach: RsvpAttach | null = null;
      const host = new RsvpHost({ ...o.rsvp, log, registry: metrics.registry, ...(this.tc ? { tc: this.tc } : {}), onProgramStatus: (e) => attach?.onStatus(e) });
      attach = new RsvpAttach(host, { log, publish: (e) => events.publish(e), ...(o.rsvp.refreshMs ? { estimateMs: Math.min(o.rsvp.refreshMs, 2000) } : {}) });
      let unsubscribe: (() => void) | null = null;
      const before = followFlows;
      followFlows = (doc) => {
        before?.(doc);
        const wants = doc.script !== undefined || doc.rules.some((r) => r.action.reserve !== undefined) || doc.default?.reserve !== undefined;
        if (wants && !unsubscribe) unsubscribe = events.subscribe(attach!.onEvent);
        else if (!wants && unsubscribe) { unsubscribe(); unsubscribe = null; }
      };
      c.add<Component>({
        name: host.name,
        start: async () => { await host.start(); followFlows!(policy.doc); },
        stop: async () => { unsubscribe?.(); attach!.stop(); await host.stop(); },
        status: () => ({ ...host.status(), rsvp_sockets: { attached: attach!.attached, not_attached: attach!.failed, over_user_bound: attach!.overLimit } }),
        routes: host.routes,
      });
    }
    // the agent's flows, then the sockets the eBPF programs decided (path says which)
    const allFlows = () => [...flows.list().map((f) => ({ path: 'agent', ...f })), ...ebpf.flows()];
    c.add(every(clock, sweepMs, {
      name: 'flows',
      // A flow is its process's while that pid still runs with the start time it had.
      sweep: () => {
        const n = flows.sweep((pid, start) => { const s = startTime(pid); return s !== undefined && (start === undefined || s === start); });
        if (n) log.debug({ removed: n }, 'flow sweep');
      },
      status: () => ({ flows: flows.size }),
      collect: () => { metrics.flows.set(flows.size); metrics.evicted.set(flows.evicted); },
      routes: [{ method: 'GET', path: '/v1/flows', handle: () => ({ json: allFlows() }) }],
    }));
    // why a socket has its mark: qos explain's answer (explain/api.ts)
    c.add<Component>({ name: 'explain', routes: explainRoutes({ policy, kernel, ebpf, ...(this.tc ? { tc: this.tc } : {}), flows: allFlows }) });
    c.add(every(clock, sweepMs, {
      name: 'agents',
      start: async () => {
        // Every connection is a descriptor: take as many as we may, and give agents half of
        // them, so that no number of idle connections leaves the daemon without descriptors.
        const nofile = raiseNofile(NOFILE_WANTED);
        const limits = { ...limitsFor(nofile), ...o.agentLimits };
        agents = new AgentServer({
          path: o.socket, decider: new Decider(flows, () => policy.current, time.now), identities, metrics, log, limits, clock, time,
          onDecision: (r) => decisions.record(r),
          onConnect: (pid, start) => ebpf.agentConnected(pid, start),
          onDisconnect: (pid, start) => {
            if (startTime(pid) === start) return; // still running: its flows stay
            ebpf.agentGone(pid);
            flows.closePid(pid, start);
            identities.forget(pid);
          },
        });
        log.info({ nofile, limits }, 'agent connection bounds');
        this.raisePriority();
        await agents.listen();
      },
      stop: async () => { await agents?.close(); },
      sweep: () => { const orphans = agents!.sweep(); if (orphans) log.debug({ orphan_connections: orphans }, 'agent sweep'); },
      status: () => ({
        agents_connected: agents!.connections,
        agent_limits: agents!.limits,
        agents_by_uid: Object.fromEntries([...agents!.connectionsByUser()].sort((a, b) => b[1] - a[1]).slice(0, 10)),
      }),
      collect: () => metrics.identityReads.set(identities.reads),
    }));
    c.add(decisions);
    // packets per DSCP from the kernel (kernel/dscp-counters.ts), in a table beside the rules',
    // unless kernel rules are off; a machine where it cannot be made has no DSCP figures
    const dscp = ko.mode === 'off' ? null : new DscpCounters(`${ko.table}_dscp`);
    let counting = false;
    c.add<Component>({
      name: 'dscp-counters',
      start: async () => {
        if (!dscp) return;
        try {
          await dscp.install();
          counting = true;
          log.info({ table: `inet ${dscp.table}`, hook: DSCP_HOOK.hook, priority: DSCP_HOOK.priority }, 'DSCP counters installed: packets per class leaving this namespace, counted for the metrics history; they change no packet');
        } catch (err) { log.warn({ err: (err as Error).message, table: `inet ${dscp.table}` }, 'no DSCP counters: the metrics history has no packets per class'); }
      },
      stop: async () => { if (counting) { counting = false; await dscp!.remove(); } },
      status: () => ({ dscp_counters: counting ? `inet ${dscp!.table}` : null }),
    });
    c.add(new MetricsHistory({
      clock, intervalMs: o.metricsIntervalMs,
      sources: {
        decisions: () => decisions.total,
        latency: () => metrics.latency.buckets(),
        scripts: () => metrics.scriptTotals(),
        dscp: () => (counting ? dscp!.read() : Promise.resolve(null)),
      },
      onDscpError: (err) => log.warn({ err: (err as Error).message }, 'DSCP counters not read'),
    }));
    // characterisation of an uploaded capture or a live flow of the table (docs/characterize.md)
    c.add(new CharacterizeApi({ flows }));
    c.add<Component>({
      name: 'daemon',
      status: () => ({ memory: { ...(({ rss, heapUsed }) => ({ rss, heap_used: heapUsed }))(process.memoryUsage()), old_space_used: oldSpaceUsed() } }),
      routes: [
        // ?gc=1: a full collection first, when the daemon runs with node's --expose-gc (the
        // memory tests do: what is left after it is what the daemon keeps); otherwise ignored
        { method: 'GET', path: '/v1/status', handle: (r) => { if (r.url.searchParams.get('gc') === '1') (globalThis as { gc?: () => void }).gc?.(); return { json: this.status() }; } },
        { method: 'GET', path: '/metrics', handle: async () => { c.collect(); return { contentType: metrics.registry.contentType, text: await metrics.registry.metrics() }; } },
      ],
    });
    if (o.fleet) {
      const { fleet } = o;
      c.add(new FleetNode({
        ...fleet, dir: fleetDir!, log, clock,
        targets: {
          applyPolicy: async (text, by) => { await policy.apply(text, { by, uid: 0, managed: true }); },
          policySha256: () => policy.sha256,
          applyRules: async (text, by) => {
            const doc = parseRuleSet(text, by, systemNames(), kernel.validate);
            await kernel.edit(undefined, true, { op: 'import', doc });
            await kernel.edit(undefined, false, { op: 'import', doc });
          },
          stats: () => ({ agents: agents?.connections ?? 0, decisions: decisions.total }),
        },
      }));
    }
    const admin = new AdminServer(o.admin, c, { group: o.adminGroup });
    c.add<Component>({ name: 'admin', start: () => admin.listen(), stop: () => admin.close() });
    if (o.dashboard) {
      // after the admin socket: the token file goes beside it, in the directory it made
      c.add(new DashboardServer({
        ...o.dashboard, tokenFile: tokenFileFor(o.admin), routes: c, log, clock,
        sources: { flows: (fn) => events.subscribe(fn), decisions: (fn) => decisions.follow(fn) },
      }));
    }
  }

  /** Starts every component (the policy is loaded first; throws QosError if it is invalid).
   * A start that fails stops what it had started (script workers, sockets, the table), so
   * the process can exit. */
  async start(): Promise<void> {
    await this.components.start();
    this.log.info({ socket: this.o.socket, admin: this.o.admin, policy: this.policy.source, policy_origin: this.policy.origin, rules: this.policy.engine.ruleCount, version: PROTOCOL_VERSION }, 'qosd listening');
  }

  /** Agents wait for our answers with a deadline; under CPU contention a daemon at the same
   * priority as a busy program's 64 threads misses it (measured: 64 threads x 200 connects on
   * 2 cores). Taking a higher priority is what a service manager would do for us. */
  private raisePriority(): void {
    const nice = this.o.nice === undefined ? DEFAULT_NICE : this.o.nice;
    if (nice === null) return;
    try {
      setPriority(nice);
      this.log.debug({ nice }, 'scheduling priority set');
    } catch (e) {
      this.log.info({ nice, err: (e as Error).message }, 'cannot raise scheduling priority (needs root or CAP_SYS_NICE); agents may time out under heavy CPU load');
    }
  }

  async stop(): Promise<void> {
    await this.components.stop();
    this.log.info('qosd stopped');
  }

  /** Reloads the policy file; a bad file leaves the running policy in force. */
  reload(trigger: string): Promise<ReloadResult> {
    return this.policy.reload(trigger);
  }

  status(): Record<string, unknown> {
    return {
      version: PROTOCOL_VERSION,
      pid: process.pid,
      started: new Date(this.started).toISOString(),
      uptime_s: Math.round((Date.now() - this.started) / 1000),
      agent_socket: this.o.socket,
      /** the deadline agents not told otherwise give each request (generation.ts) */
      agent_timeout_ms: this.o.agentTimeoutMs ?? DEFAULT_AGENT_TIMEOUT_MS,
      admin_socket: this.o.admin,
      ...this.components.status(),
    };
  }
}

/** A component that also does something every ms while it runs (from start to stop). */
function every(clock: Clock, ms: number, c: Component & { sweep(): void }): Component {
  let timer: Timer | null = null;
  return {
    ...c,
    start: async () => { await c.start?.(); timer = clock.every(ms, () => c.sweep()); },
    stop: async () => { timer?.cancel(); timer = null; await c.stop?.(); },
  };
}

/** Bytes in use in V8's old generation: what survived two young-generation collections. A leak
 * ends up here; the young generation, which V8 grows and shrinks with the allocation rate, does not
 * say whether memory is kept. */
function oldSpaceUsed(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')?.space_used_size ?? 0;
}
