/* The running policy as a component: the engine, its script host and its generation (published
 * to agents in `<socket>.gen`), loaded at start and replaced whole by a reload (SIGHUP, POST
 * /v1/reload, or the file changing). A bad file, or one another part refuses (`accept`: the
 * kernel rules), leaves the running policy in force and is reported in the log and status.
 * Through the admin API (policy-api.ts) its text is read, checked, and replaced (`apply`: the
 * file written, then reloaded, the previous text kept as a version, policy-versions.ts); reloads
 * and applies run one at a time. */

import { watch, type FSWatcher } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Clock, Timer } from '../clock.js';
import type { Component, Route } from '../component.js';
import { writeFileAtomic } from '../atomic-file.js';
import { formatProblems, QosError, type Problem } from '../errors.js';
import { DEFAULT_POLICY_FILE, type PolicyOrigin } from '../paths.js';
import { checkPolicyOffLoop, loadPolicyOffLoop, type LoadedPolicy } from '../policy/compile.js';
import { DEFAULT_POLICY_TEXT } from '../policy/default-policy.js';
import { PolicyEngine } from '../policy/engine.js';
import { parsePolicy, readPolicyText, type PolicyScript } from '../policy/load.js';
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
import { policyRoutes } from './policy-api.js';
import { PolicyVersions, sha256 } from './policy-versions.js';

export interface RunningPolicyOptions {
  /** the policy file; none: the built-in policy */
  file?: string;
  origin?: PolicyOrigin;
  /** the agent socket: the generation file goes beside it */
  socket: string;
  /** the deadline published for agents in the generation file (default: the agent's 50 ms) */
  agentTimeoutMs?: number;
  scriptWorkers?: number;
  scriptLimits?: Partial<SandboxLimits>;
  /** where earlier versions are kept (policy-versions/ beside the kernel rule store) */
  versionsDir: string;
  /** another part's say on a new policy (the kernel rules apply its rules); a throw refuses it */
  accept(doc: PolicyDoc): Promise<void>;
  /** who manages the file instead of the admin API (the fleet: `qos fleet push`); an apply
   * through the API is refused then */
  managedBy?: string;
  metrics: Metrics;
  log: Logger;
  clock: Clock;
}

interface State extends PolicyView {
  script: ScriptPool | TclHost | null;
  doc: PolicyDoc;
  source: string;
  origin: PolicyOrigin;
  /** the text it was loaded from, and its sha256 */
  text: string;
  sha256: string;
  loadedAt: string;
  lastError: { at: string; problems: Problem[]; message: string } | null;
}

function builtIn(): LoadedPolicy {
  const doc = parsePolicy(DEFAULT_POLICY_TEXT, '<built-in>');
  return { doc, script: null, engine: new PolicyEngine(doc), text: DEFAULT_POLICY_TEXT };
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

export interface ReloadResult { ok: boolean; rules: number; error?: unknown; unchanged?: boolean }
/** An apply's answer: `version` is the number the replaced policy was kept under. */
export interface ApplyResult { ok: true; version: number; rules: number; generation: number; sha256: string }

/** Problems of a text checked as `file`: those in the text itself lose the file's name (they
 * are at a line and column of the text), those of another file (the script) keep theirs. */
function ofText(problems: Problem[], file: string): Problem[] {
  return problems.map(({ file: f, ...p }) => (f === undefined || f === file ? p : { file: f, ...p }));
}

export class RunningPolicy implements Component {
  readonly name = 'policy';
  private state!: State;
  private generations: GenerationFile | null = null;
  /** a script host started but not in place yet (closed if start fails) */
  private pending: ScriptPool | TclHost | null = null;
  private watcher: FSWatcher | null = null;
  private reloadTimer: Timer | null = null;
  /** reloads and applies, one at a time */
  private queue: Promise<unknown> = Promise.resolve();
  readonly versions: PolicyVersions;

  constructor(private readonly o: RunningPolicyOptions) {
    this.versions = new PolicyVersions(o.versionsDir);
  }

  /** What the decider reads for every call. */
  get current(): PolicyView { return this.state; }
  get doc(): PolicyDoc { return this.state.doc; }
  get engine(): PolicyEngine { return this.state.engine; }
  get source(): string { return this.state.source; }
  /** the running text's sha256 */
  get sha256(): string { return this.state.sha256; }
  /** the text the running policy was loaded from */
  get text(): string { return this.state.text; }
  get origin(): PolicyOrigin { return this.state.origin; }
  /** the policy file, or null for the built-in policy */
  get file(): string | null { return this.o.file ?? null; }

  async start(): Promise<void> {
    try {
      await this.load();
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  private async load(): Promise<void> {
    const { doc, script, engine, text } = this.o.file ? await loadPolicyOffLoop(this.o.file) : builtIn();
    this.pending = await this.startScript(script);
    // the generation file lives beside the agent socket: its directory first (as listen() does)
    await mkdir(dirname(resolve(this.o.socket)), { recursive: true, mode: 0o755 });
    this.generations = new GenerationFile(generationPath(this.o.socket), this.o.agentTimeoutMs);
    this.state = {
      engine, doc, generation: this.generations.next(agentFlags({ engine, script: this.pending })), script: this.pending,
      source: this.o.file ? resolve(this.o.file) : '<built-in>', origin: this.o.origin ?? (this.o.file ? 'option' : 'built-in'),
      text, sha256: sha256(text), loadedAt: new Date().toISOString(), lastError: null,
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

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Reloads the policy file; a bad file leaves the running policy in force. */
  reload(trigger: string): Promise<ReloadResult> {
    return this.serial(() => this.reloadNow(trigger));
  }

  private async reloadNow(trigger: string): Promise<ReloadResult & { err?: QosError }> {
    if (!this.o.file) return { ok: true, rules: this.state.engine.ruleCount };
    const { metrics, log } = this.o;
    try {
      const { doc, script, engine, text } = await loadPolicyOffLoop(this.o.file);
      const hash = sha256(text);
      // The watcher also sees the daemon's own writes (an apply, and the text a refused apply
      // puts back): a file whose text is the one running is not loaded again. So a write
      // through the API makes one reload, never a second. (SIGHUP and POST /v1/reload do reload
      // the same text: its script may have changed.)
      if (trigger === 'file-change' && hash === this.state.sha256) return { ok: true, rules: this.state.engine.ruleCount, unchanged: true };
      const pool = await this.startScript(script);
      await this.o.accept(doc).catch(async (e: unknown) => { await pool?.close(); throw e; });
      const old = this.state.script;
      this.state = { ...this.state, engine, doc, text, sha256: hash, generation: this.generations!.next(agentFlags({ engine, script: pool })), script: pool, loadedAt: new Date().toISOString(), lastError: null };
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
      return { ok: false, rules: this.state.engine.ruleCount, error: err.toJSON(), err };
    }
  }

  /** The running policy as `GET /v1/policy` answers it; `file_differs`: the file on disk is not
   * the text that runs (an edit of it was refused, or it is gone). */
  async describe(): Promise<Record<string, unknown>> {
    const s = this.state;
    let fileDiffers = false;
    if (this.o.file) {
      try { fileDiffers = sha256(await readPolicyText(this.o.file, { anyPath: true })) !== s.sha256; } catch { fileDiffers = true; }
    }
    return {
      source: s.source, origin: s.origin, editable: this.o.file !== undefined, text: s.text, sha256: s.sha256, loaded_at: s.loadedAt,
      generation: s.generation, rules: s.engine.ruleCount, last_error: s.lastError, file_differs: fileDiffers,
    };
  }

  /** Checks policy text with the checker of `qos policy check` (policy/check.ts), in a worker,
   * as if it were the running policy's file (its script read relative to it, only where the
   * daemon trusts it); the built-in policy's texts as if in /etc/qosd. */
  async check(text: string): Promise<{ ok: boolean; rules?: number; problems: Problem[] }> {
    const file = this.o.file ?? DEFAULT_POLICY_FILE;
    try {
      return { ok: true, rules: (await checkPolicyOffLoop(text, resolve(file))).rules, problems: [] };
    } catch (e) {
      if (e instanceof QosError && (e.code === 'QOS_ERR_POLICY_INVALID' || e.code === 'QOS_ERR_UNSAFE_PATH')) {
        return { ok: false, problems: e.problems.length ? ofText(e.problems, resolve(file)) : [{ message: e.message }] };
      }
      throw e;
    }
  }

  /** Replaces the running policy with `text`: refused (changing nothing) if the text does not
   * check, if `base` is not the running text's sha256 (someone changed it since it was read),
   * or for the built-in policy. Otherwise the running text is kept as a version, the file is
   * written atomically (same mode and owner, never through a link) and reloaded; if the reload
   * fails (another part refuses it: the kernel rules), the file's previous text is put back and
   * the error thrown. A bad policy never replaces a good one, running or on disk. */
  apply(text: string, o: { base?: string; by: string; uid: number; managed?: boolean }): Promise<ApplyResult> {
    return this.serial(async () => {
      const file = this.o.file;
      if (this.o.managedBy && !o.managed) throw new QosError('QOS_ERR_POLICY_READONLY', `this daemon's policy comes from ${this.o.managedBy}: change it there (qos fleet push), not on one node`);
      if (!file) throw new QosError('QOS_ERR_POLICY_READONLY', 'the daemon runs the built-in policy, which has no file to write: start it with --policy FILE to edit the running policy (qos policy default > FILE gives the built-in one to start from)');
      const s = this.state;
      if (o.base !== undefined && o.base !== s.sha256) {
        throw new QosError('QOS_ERR_POLICY_STALE', `the running policy is ${s.sha256.slice(0, 12)}, not ${o.base.slice(0, 12)}: someone changed it since you read it; read it again (qos policy show) and redo your edit`);
      }
      try {
        await checkPolicyOffLoop(text, resolve(file));
      } catch (e) {
        if (e instanceof QosError) {
          const at = resolve(file);
          throw new QosError(e.code, `not applied, nothing changed: ${e.message.startsWith(`${at}: `) ? e.message.slice(at.length + 2) : e.message}`, ofText(e.problems, at));
        }
        throw e;
      }
      let previous: string;
      try { previous = await readPolicyText(file, { anyPath: true }); } catch { previous = s.text; }
      const version = this.versions.stage(s.text, { by: o.by, uid: o.uid, source: s.source });
      try { writeFileAtomic(file, text, { keepOwner: true }); } catch (e) { version.discard(); throw e; }
      const r = await this.reloadNow('api-apply');
      if (!r.ok) {
        version.discard();
        try { writeFileAtomic(file, previous, { keepOwner: true }); } catch (e) {
          this.o.log.error({ file, err: (e as Error).message }, 'the refused policy could not be taken back out of the file: it differs from the running policy');
        }
        throw r.err!;
      }
      version.commit();
      const now = this.state;
      this.o.log.info({ by: o.by, uid: o.uid, kept_as: version.version, sha256: now.sha256, rules: now.engine.ruleCount }, 'policy replaced through the admin API');
      return { ok: true, version: version.version, rules: now.engine.ruleCount, generation: now.generation, sha256: now.sha256 };
    });
  }

  readonly routes: readonly Route[] = [
    { method: 'POST', path: '/v1/reload', handle: async () => ({ json: await this.reload('api') }) },
    ...policyRoutes(this),
  ];

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
