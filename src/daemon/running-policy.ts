/* The running policy as a component: the engine, its script host and its generation (published
 * to agents in `<socket>.gen`), loaded at start and replaced whole by a reload (SIGHUP, POST
 * /v1/reload, or the file changing). A bad file, or one another part refuses (`accept`: the
 * kernel rules), leaves the running policy in force and is reported in the log and status. */

import { watch, type FSWatcher } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Clock, Timer } from '../clock.js';
import type { Component, Route } from '../component.js';
import { formatProblems, QosError, type Problem } from '../errors.js';
import type { PolicyOrigin } from '../paths.js';
import { loadPolicyOffLoop, type LoadedPolicy } from '../policy/compile.js';
import { DEFAULT_POLICY_TEXT } from '../policy/default-policy.js';
import { PolicyEngine } from '../policy/engine.js';
import { parsePolicy, type PolicyScript } from '../policy/load.js';
import type { PolicyDoc } from '../policy/schema.js';
import { decode } from '../protocol/messages.js';
import { DEFAULT_LIMITS, type HandlerName, type SandboxLimits } from '../script/js-sandbox.js';
import { ScriptPool, type ScriptOutcome } from '../script/pool.js';
import { TclHost } from '../script/tcl-host.js';
import { hasRequest } from './agents.js';
import { Decider, type PolicyView } from './decide.js';
import { FlowTable } from './flows.js';
import { agentFlags, GenerationFile, generationPath } from './generation.js';
import type { Metrics } from './metrics.js';

export interface RunningPolicyOptions {
  /** the policy file; none: the built-in policy */
  file?: string;
  origin?: PolicyOrigin;
  /** the agent socket: the generation file goes beside it */
  socket: string;
  scriptWorkers?: number;
  scriptLimits?: Partial<SandboxLimits>;
  /** another part's say on a new policy (the kernel rules apply its rules); a throw refuses it */
  accept(doc: PolicyDoc): Promise<void>;
  metrics: Metrics;
  log: Logger;
  clock: Clock;
}

interface State extends PolicyView {
  script: ScriptPool | TclHost | null;
  doc: PolicyDoc;
  source: string;
  origin: PolicyOrigin;
  loadedAt: string;
  lastError: { at: string; problems: Problem[]; message: string } | null;
}

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

export class RunningPolicy implements Component {
  readonly name = 'policy';
  private state!: State;
  private generations: GenerationFile | null = null;
  /** a script host started but not in place yet (closed if start fails) */
  private pending: ScriptPool | TclHost | null = null;
  private watcher: FSWatcher | null = null;
  private reloadTimer: Timer | null = null;

  constructor(private readonly o: RunningPolicyOptions) {}

  /** What the decider reads for every call. */
  get current(): PolicyView { return this.state; }
  get doc(): PolicyDoc { return this.state.doc; }
  get engine(): PolicyEngine { return this.state.engine; }
  get source(): string { return this.state.source; }
  get origin(): PolicyOrigin { return this.state.origin; }

  async start(): Promise<void> {
    try {
      await this.load();
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  private async load(): Promise<void> {
    const { doc, script, engine } = this.o.file ? await loadPolicyOffLoop(this.o.file) : builtIn();
    this.pending = await this.startScript(script);
    // the generation file lives beside the agent socket: its directory first (as listen() does)
    await mkdir(dirname(resolve(this.o.socket)), { recursive: true, mode: 0o755 });
    this.generations = new GenerationFile(generationPath(this.o.socket));
    this.state = {
      engine, doc, generation: this.generations.next(agentFlags({ engine, script: this.pending })), script: this.pending,
      source: this.o.file ? resolve(this.o.file) : '<built-in>', origin: this.o.origin ?? (this.o.file ? 'option' : 'built-in'),
      loadedAt: new Date().toISOString(), lastError: null,
    };
    this.pending = null;
    warmUp(engine);
  }

  /** Once the whole daemon runs, a change of the file reloads it. */
  running(): void {
    if (this.o.file) this.watch(this.o.file);
  }

  async stop(): Promise<void> {
    this.watcher?.close();
    this.reloadTimer?.cancel();
    this.generations?.close();
    await (this.state?.script ?? this.pending)?.close();
  }

  /** The policy's script running in worker threads, or null; throws if it does not compile. */
  private async startScript(script: PolicyScript | null): Promise<ScriptPool | TclHost | null> {
    if (!script) return null;
    const m = this.o.metrics;
    const common = {
      limits: { ...DEFAULT_LIMITS, ...this.o.scriptLimits },
      log: this.o.log,
      onCall: (handler: HandlerName, o: ScriptOutcome) => {
        m.scriptCall(handler, o.status);
        m.scriptDuration.observe(o.ms / 1000);
      },
      onRestart: () => m.scriptRestarts.inc(),
    };
    if (script.kind === 'tcl') return TclHost.start(script.path, common);
    return ScriptPool.start(script.source, script.path, { ...common, workers: this.o.scriptWorkers ?? Math.max(2, availableParallelism()) });
  }

  /** Reloads the policy file; a bad file leaves the running policy in force. */
  async reload(trigger: string): Promise<{ ok: boolean; rules: number; error?: unknown }> {
    if (!this.o.file) return { ok: true, rules: this.state.engine.ruleCount };
    const { metrics, log } = this.o;
    try {
      const { doc, script, engine } = await loadPolicyOffLoop(this.o.file);
      const pool = await this.startScript(script);
      await this.o.accept(doc).catch(async (e: unknown) => { await pool?.close(); throw e; });
      const old = this.state.script;
      this.state = { ...this.state, engine, doc, generation: this.generations!.next(agentFlags({ engine, script: pool })), script: pool, loadedAt: new Date().toISOString(), lastError: null };
      // Calls in flight in the old script's workers fall through to the rules they started with.
      void old?.close();
      metrics.reloads.inc({ result: 'ok' });
      log.info({ trigger, rules: engine.ruleCount }, 'policy reloaded');
      return { ok: true, rules: engine.ruleCount };
    } catch (e) {
      const err = e instanceof QosError ? e : new QosError('QOS_ERR_INTERNAL', String(e));
      this.state.lastError = { at: new Date().toISOString(), problems: err.problems, message: err.message };
      metrics.reloads.inc({ result: 'error' });
      log.error({ trigger, code: err.code, problems: err.problems }, `policy reload failed, previous policy stays in force:\n${formatProblems(err.problems) || err.message}`);
      return { ok: false, rules: this.state.engine.ruleCount, error: err.toJSON() };
    }
  }

  readonly routes: readonly Route[] = [{ method: 'POST', path: '/v1/reload', handle: async () => ({ json: await this.reload('api') }) }];

  status(): Record<string, unknown> {
    const s = this.state;
    return {
      policy: {
        source: s.source, origin: s.origin, loaded_at: s.loadedAt, rules: s.engine.ruleCount,
        script: s.script ? { file: s.script.file, handlers: [...s.script.handlers] } : null,
        generation: s.generation, last_error: s.lastError,
      },
    };
  }

  private watch(file: string): void {
    // Watch the directory: editors replace files by rename, which a file watch would lose.
    const name = basename(file);
    const { log, clock } = this.o;
    try {
      this.watcher = watch(dirname(resolve(file)), (_ev, f) => {
        if (f && f.toString() !== name) return;
        this.reloadTimer?.cancel();
        this.reloadTimer = clock.after(200, () => void this.reload('file-change'));
      });
      this.watcher.on('error', (e) => log.warn({ err: e.message }, 'policy watch failed; SIGHUP still reloads'));
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'cannot watch the policy file; SIGHUP still reloads');
    }
  }
}
