/* `qos daemon`: wires the agent server, the policy engine, the flow table, the admin API and
 * metrics together; reloads the policy atomically on SIGHUP or file change. */

import { watch, type FSWatcher } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { availableParallelism, setPriority } from 'node:os';
import { basename, dirname, resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import { formatProblems, QosError, type Problem } from '../errors.js';
import { DEFAULT_POLICY_TEXT } from '../policy/default-policy.js';
import { PolicyEngine } from '../policy/engine.js';
import { loadPolicyOffLoop, type LoadedPolicy } from '../policy/compile.js';
import { parsePolicy, type PolicyScript } from '../policy/load.js';
import { DEFAULT_LIMITS, type HandlerName, type SandboxLimits } from '../script/js-sandbox.js';
import { ScriptPool, type ScriptOutcome } from '../script/pool.js';
import { TclHost } from '../script/tcl-host.js';
import { decode, PROTOCOL_VERSION } from '../protocol/messages.js';
import { AdminServer } from './admin.js';
import { DEFAULT_NFT_TABLE, DEFAULT_RULES_FILE, type PolicyOrigin } from '../paths.js';
import { rulesApi } from '../kernel/api.js';
import { ctMark, DEFAULT_CT_MASK, type CtMark } from '../kernel/ctmark.js';
import { KernelRules, type KernelMode } from '../kernel/manager.js';
import { AgentServer, hasRequest } from './agents.js';
import { Decider, type DecisionRecord } from './decide.js';
import { systemClock, type Clock, type Timer } from '../clock.js';
import { FlowEvents } from './flow-events.js';
import { FlowTable } from './flows.js';
import { agentFlags, GenerationFile, generationPath } from './generation.js';
import { IdentityResolver, raiseNofile, startTime } from './identity.js';
import { limitsFor, type AgentLimits } from './shares.js';
import { Metrics } from './metrics.js';

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
  /** Worker threads for a JavaScript policy script, and each call's limits. */
  scriptWorkers?: number;
  scriptLimits?: Partial<SandboxLimits>;
  sweepMs?: number;
  /** time for the daemon's timers (default: the system's; tests give a manual clock) */
  clock?: Clock;
  /** Kernel rules (nftables): where the rule set is stored, the table, whether to use it, and
   * the bits of the connection mark it may use (default: DEFAULT_CT_MASK). */
  kernel?: { rulesFile: string; table: string; mode: KernelMode; ctMark?: CtMark };
  /** Bounds on agent connections (default: from the descriptor limit, see shares.ts). */
  agentLimits?: Partial<AgentLimits>;
  /** Flow-table bounds: entries in all, and per user (their oldest go past it). */
  maxFlows?: number;
  maxFlowsPerUser?: number;
  /** gid whose members may use the admin API besides root and the daemon's own user. */
  adminGroup?: number;
}

/** Descriptors the daemon asks for at start; agent connections get half (shares.ts). */
export const NOFILE_WANTED = 65_536;

interface PolicyState {
  engine: PolicyEngine;
  generation: number;
  script: ScriptPool | TclHost | null;
  source: string;
  origin: PolicyOrigin;
  loadedAt: string;
  lastError: { at: string; problems: Problem[]; message: string } | null;
}

const DECISION_LOG = 1000;

function builtIn(): LoadedPolicy {
  const doc = parsePolicy(DEFAULT_POLICY_TEXT, '<built-in>');
  return { doc, script: null, engine: new PolicyEngine(doc) };
}

/** Runs the request path a few thousand times on throwaway state before the socket opens, so
 * that the first burst of agents meets compiled code, not the interpreter (measured: a fresh
 * daemon took 4 ms for its first request and ~30 µs per line for the next thousand). */
function warmUp(engine: PolicyEngine): void {
  const flows = new FlowTable();
  const decider = new Decider(flows, () => ({ engine, generation: 1, script: null }));
  const id = { pid: 1, uid: 0, gid: 0, user: 'root', group: 'root', exe: '/qosd/warm-up', cmdline: 'qosd warm-up', unit: '', cgroup: '' };
  for (let i = 0; i < 3000; i++) {
    const fd = 3 + (i % 100);
    const host = `198.51.100.${i % 250}`;
    for (const line of [
      `Socket 1 0 {qosd warm-up} ${i % 2 ? 10 : 2} ${1 + (i % 2)} 0 ${fd}`,
      `Connect 1 0 {qosd warm-up} ${fd} {2 ${host} ${1024 + i}} {} {}`,
      `Cached 1 0 {qosd warm-up} 1 SendTo ${fd} {2 ${host} 53}`,
      `Close 1 0 {qosd warm-up} ${fd}`,
    ]) void decider.handle(decode(line), id);
    hasRequest(Buffer.from(`Close 1 0 x ${fd}\nConnect 1 0 x\n`));
  }
}

export class Daemon {
  readonly log: Logger;
  readonly metrics = new Metrics();
  readonly flows: FlowTable;
  private readonly identities = new IdentityResolver();
  private policy!: PolicyState;
  private readonly decisions: DecisionRecord[] = [];
  private readonly followers = new Set<(r: DecisionRecord) => void>();
  private agents!: AgentServer;
  private generations: GenerationFile | null = null;
  private admin!: AdminServer;
  private kernel!: KernelRules;
  private watcher: FSWatcher | null = null;
  private sweepTimer: Timer | null = null;
  private reloadTimer: Timer | null = null;
  private readonly started = Date.now();
  private decisionCount = 0;
  /** the script host started by start() before the policy is in place (stopped if start fails) */
  private pendingScript: ScriptPool | TclHost | null = null;

  private readonly clock: Clock;

  constructor(private readonly o: DaemonOptions) {
    this.clock = o.clock ?? systemClock;
    this.log = o.log ?? pino({ level: o.logLevel ?? 'info', base: { svc: 'qosd' } });
    // the flow-event hub (flow-events.ts): parts that follow flows subscribe to flows.events
    const events = new FlowEvents((err, e) => this.log.error({ err, event: e.kind, pid: e.flow.pid, fd: e.flow.fd }, 'a flow-event subscriber failed'));
    this.flows = new FlowTable(Date.now, o.maxFlows, o.maxFlowsPerUser, events);
  }

  /** Loads the policy and opens both sockets; throws QosError if the policy is invalid. A
   * start that fails stops what it had started (script workers, sockets, the table), so the
   * process can exit. */
  async start(): Promise<void> {
    try {
      await this.startAll();
    } catch (e) {
      await this.stop().catch(() => undefined);
      throw e;
    }
  }

  private async startAll(): Promise<void> {
    const { doc, script, engine } = this.o.policy ? await loadPolicyOffLoop(this.o.policy) : builtIn();
    const pool = await this.startScript(script);
    this.pendingScript = pool;
    // the generation file lives beside the agent socket: its directory first (as listen() does)
    await mkdir(dirname(resolve(this.o.socket)), { recursive: true, mode: 0o755 });
    this.generations = new GenerationFile(generationPath(this.o.socket));
    this.policy = {
      engine, generation: this.generations.next(agentFlags({ engine, script: pool })), script: pool,
      source: this.o.policy ? resolve(this.o.policy) : '<built-in>', origin: this.o.policyOrigin ?? (this.o.policy ? 'option' : 'built-in'),
      loadedAt: new Date().toISOString(), lastError: null,
    };
    warmUp(this.policy.engine);
    const ko = this.o.kernel ?? { rulesFile: DEFAULT_RULES_FILE, table: DEFAULT_NFT_TABLE, mode: 'auto' as const };
    this.kernel = new KernelRules({ ...ko, ctMark: ko.ctMark ?? ctMark(DEFAULT_CT_MASK), log: this.log });
    await this.kernel.start(doc);
    const decider = new Decider(this.flows, () => this.policy);
    // Every connection is a descriptor: take as many as we may, and give agents half of them,
    // so that no number of idle connections leaves the daemon without descriptors.
    const nofile = raiseNofile(NOFILE_WANTED);
    const limits = { ...limitsFor(nofile), ...this.o.agentLimits };
    this.agents = new AgentServer({
      path: this.o.socket, decider, identities: this.identities, metrics: this.metrics, log: this.log, limits, clock: this.clock,
      onDecision: (r) => this.record(r),
      onDisconnect: (pid, start) => {
        if (startTime(pid) === start) return; // still running: its flows stay
        this.flows.closePid(pid, start);
        this.identities.forget(pid);
      },
    });
    this.log.info({ nofile, limits }, 'agent connection bounds');
    this.raisePriority();
    await this.agents.listen();
    this.admin = new AdminServer(this.o.admin, {
      status: () => this.status(),
      flows: () => this.flows.list(),
      recentDecisions: (n) => this.decisions.slice(-n),
      subscribe: (fn) => { this.followers.add(fn); return () => this.followers.delete(fn); },
      metrics: async () => {
        this.metrics.flows.set(this.flows.size);
        this.metrics.evicted.set(this.flows.evicted);
        this.metrics.identityReads.set(this.identities.reads);
        return { contentType: this.metrics.registry.contentType, body: await this.metrics.registry.metrics() };
      },
      reload: () => this.reload('api'),
      rules: (method, path, body) => rulesApi(this.kernel, method, path, body),
    }, { group: this.o.adminGroup, onDropped: (n) => this.metrics.followerDropped.inc(n) });
    await this.admin.listen();
    this.sweepTimer = this.clock.every(this.o.sweepMs ?? 10_000, () => this.sweep());
    if (this.o.policy) this.watchPolicy(this.o.policy);
    this.log.info({ socket: this.o.socket, admin: this.o.admin, policy: this.policy.source, policy_origin: this.policy.origin, rules: this.policy.engine.ruleCount, version: PROTOCOL_VERSION }, 'qosd listening');
  }

  /** The policy's script running in worker threads, or null; throws if it does not compile. */
  private async startScript(script: PolicyScript | null): Promise<ScriptPool | TclHost | null> {
    if (!script) return null;
    const m = this.metrics;
    const common = {
      limits: { ...DEFAULT_LIMITS, ...this.o.scriptLimits },
      log: this.log,
      onCall: (handler: HandlerName, o: ScriptOutcome) => {
        m.scriptCall(handler, o.status);
        m.scriptDuration.observe(o.ms / 1000);
      },
      onRestart: () => m.scriptRestarts.inc(),
    };
    if (script.kind === 'tcl') return TclHost.start(script.path, common);
    return ScriptPool.start(script.source, script.path, { ...common, workers: this.o.scriptWorkers ?? Math.max(2, availableParallelism()) });
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
    this.watcher?.close();
    this.sweepTimer?.cancel();
    this.reloadTimer?.cancel();
    this.generations?.close();
    await Promise.all([this.agents?.close(), this.admin?.close(), this.policy?.script?.close() ?? this.pendingScript?.close(), this.kernel?.stop()]);
    this.log.info('qosd stopped');
  }

  /** Reloads the policy file; a bad file leaves the running policy in force. */
  async reload(trigger: string): Promise<{ ok: boolean; rules: number; error?: unknown }> {
    if (!this.o.policy) return { ok: true, rules: this.policy.engine.ruleCount };
    try {
      const { doc, script, engine } = await loadPolicyOffLoop(this.o.policy);
      const pool = await this.startScript(script);
      await this.kernel.setPolicy(doc).catch(async (e: unknown) => { await pool?.close(); throw e; });
      const old = this.policy.script;
      this.policy = { engine, generation: this.generations!.next(agentFlags({ engine, script: pool })), script: pool, source: this.policy.source, origin: this.policy.origin, loadedAt: new Date().toISOString(), lastError: null };
      // Calls in flight in the old script's workers fall through to the rules they started with.
      void old?.close();
      this.metrics.reloads.inc({ result: 'ok' });
      this.log.info({ trigger, rules: engine.ruleCount }, 'policy reloaded');
      return { ok: true, rules: engine.ruleCount };
    } catch (e) {
      const err = e instanceof QosError ? e : new QosError('QOS_ERR_INTERNAL', String(e));
      this.policy.lastError = { at: new Date().toISOString(), problems: err.problems, message: err.message };
      this.metrics.reloads.inc({ result: 'error' });
      this.log.error({ trigger, code: err.code, problems: err.problems }, `policy reload failed, previous policy stays in force:\n${formatProblems(err.problems) || err.message}`);
      return { ok: false, rules: this.policy.engine.ruleCount, error: err.toJSON() };
    }
  }

  status(): unknown {
    const mem = process.memoryUsage();
    return {
      version: PROTOCOL_VERSION,
      pid: process.pid,
      started: new Date(this.started).toISOString(),
      uptime_s: Math.round((Date.now() - this.started) / 1000),
      agent_socket: this.o.socket,
      admin_socket: this.o.admin,
      policy: {
        source: this.policy.source, origin: this.policy.origin, loaded_at: this.policy.loadedAt, rules: this.policy.engine.ruleCount,
        script: this.policy.script ? { file: this.policy.script.file, handlers: [...this.policy.script.handlers] } : null,
        generation: this.policy.generation, last_error: this.policy.lastError,
      },
      agents_connected: this.agents.connections,
      agent_limits: this.agents.limits,
      agents_by_uid: Object.fromEntries([...this.agents.connectionsByUser()].sort((a, b) => b[1] - a[1]).slice(0, 10)),
      flows: this.flows.size,
      decisions_total: this.decisionCount,
      kernel: this.kernel.status(),
      memory: { rss: mem.rss, heap_used: mem.heapUsed },
    };
  }

  private record(r: DecisionRecord): void {
    this.decisionCount++;
    if (this.decisions.length >= DECISION_LOG) this.decisions.splice(0, DECISION_LOG / 10);
    this.decisions.push(r);
    for (const f of this.followers) f(r);
    if (this.log.isLevelEnabled('debug')) this.log.debug({ decision: r }, 'decision');
  }

  private sweep(): void {
    // A flow is its process's while that pid still runs with the start time it had.
    const n = this.flows.sweep((pid, start) => { const s = startTime(pid); return s !== undefined && (start === undefined || s === start); });
    const orphans = this.agents.sweep();
    if (n || orphans) this.log.debug({ removed: n, orphan_connections: orphans }, 'flow sweep');
  }

  private watchPolicy(file: string): void {
    // Watch the directory: editors replace files by rename, which a file watch would lose.
    const name = basename(file);
    try {
      this.watcher = watch(dirname(resolve(file)), (_ev, f) => {
        if (f && f.toString() !== name) return;
        this.reloadTimer?.cancel();
        this.reloadTimer = this.clock.after(200, () => void this.reload('file-change'));
      });
      this.watcher.on('error', (e) => this.log.warn({ err: e.message }, 'policy watch failed; SIGHUP still reloads'));
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'cannot watch the policy file; SIGHUP still reloads');
    }
  }
}
