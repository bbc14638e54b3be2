/* The one way qosd runs other programs: argument vectors only (never a shell string), every
 * exit status checked, and a failure turned into a QosError naming the program, how it ended
 * and the first lines of its stderr. run() runs a program to completion; start() a long-running
 * one (tcpdump, a daemon, tclsh) with a handle to wait for it or stop it. */

import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { QosError, type ErrorCode } from './errors.js';

/** How a program ended, and what it printed. */
export interface Result {
  stdout: string;
  stderr: string;
  /** exit status, or null if a signal ended it */
  code: number | null;
  signal: NodeJS.Signals | null;
  pid: number | undefined;
}

export interface CommonOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** run inside this network namespace (`ip netns exec NS argv...`) */
  netns?: string;
  /** the error code a failure throws (default QOS_ERR_ENVIRONMENT) */
  code?: ErrorCode;
  /** the Debian package to name when the program is not installed */
  pkg?: string;
  /** what the program is called in messages (default: its argument vector, for start() argv[0]) */
  name?: string;
}

export interface RunOptions extends CommonOptions {
  /** killed (SIGTERM, then SIGKILL 2 s later) past this many milliseconds; the error says so */
  timeoutMs?: number;
  /** the program's standard input */
  input?: string | Buffer;
  /** bytes kept of stdout and of stderr each (default 64 MiB); past it the program is killed */
  maxOutput?: number;
  /** exit statuses that are success (default [0]); 'any': every ending is a result, a signal
   * too (only a missing program, a timeout or too much output fail) */
  ok?: readonly number[] | 'any';
  /** where the program's stderr goes: kept for the result and errors (default), or the caller's */
  stderr?: 'pipe' | 'inherit';
}

const DEFAULT_MAX_OUTPUT = 64 << 20;
const KILL_GRACE_MS = 2000;
/** bytes of stderr a started child keeps (its last ones) for error messages */
const STDERR_KEPT = 64 << 10;

/** argv run inside network namespace ns. */
export function inNetns(ns: string, argv: readonly string[]): string[] {
  return ['ip', 'netns', 'exec', ns, ...argv];
}

/** Whether a program of that name is on PATH (or, given a path, is executable there). */
export function installed(program: string): boolean {
  return whereIs(program) !== null;
}

/** The executable file a program name runs, found on PATH as the shell would (a name with a
 * slash is taken as it is), or null. */
export function whereIs(program: string): string | null {
  const files = program.includes('/') ? [program] : (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, program));
  return files.find((f) => {
    try { accessSync(f, constants.X_OK); return true; } catch { return false; }
  }) ?? null;
}

function full(argv: readonly string[], o: CommonOptions): string[] {
  if (!argv.length) throw new QosError('QOS_ERR_INTERNAL', 'exec: an empty argument vector');
  return o.netns ? inNetns(o.netns, argv) : [...argv];
}

/** The first lines of a program's stderr, on one line, for an error message. */
function firstLines(text: string, n = 6): string {
  return text.trim().split('\n').slice(0, n).join(' | ');
}

function notInstalled(program: string, o: CommonOptions, e: NodeJS.ErrnoException): QosError {
  const why = e.code === 'ENOENT' ? 'is not installed (not found on PATH)' : `cannot be run (${e.message})`;
  return new QosError(o.code ?? 'QOS_ERR_ENVIRONMENT', `${program} ${why}${o.pkg ? `: install the Debian package ${o.pkg}` : ''}`, [], { cause: e });
}

/** The error for a program that ended badly: its name, how it ended, its stderr (or stdout). */
function failed(name: string, r: Result, o: CommonOptions, timedOutMs?: number): QosError {
  const how = timedOutMs !== undefined ? `timed out after ${timedOutMs} ms`
    : r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
  const said = firstLines(r.stderr) || firstLines(r.stdout, 3);
  return new QosError(o.code ?? 'QOS_ERR_ENVIRONMENT', `${name} failed (${how})${said ? `: ${said}` : ''}`);
}

function tooMuch(name: string, max: number, o: CommonOptions): QosError {
  return new QosError(o.code ?? 'QOS_ERR_ENVIRONMENT', `${name} printed more than ${max} bytes: stopped`);
}

function succeeded(r: Result, ok: RunOptions['ok'] = [0]): boolean {
  return ok === 'any' || (r.code !== null && ok.includes(r.code));
}

/** Runs a program to completion; resolves with its output, throws a QosError if it cannot run,
 * times out, is killed or exits with a status not in `ok`. */
export function run(argv: readonly string[], o: RunOptions = {}): Promise<Result> {
  const cmd = full(argv, o);
  const name = o.name ?? argv.join(' ');
  const max = o.maxOutput ?? DEFAULT_MAX_OUTPUT;
  return new Promise((resolve, reject) => {
    const p = spawn(cmd[0]!, cmd.slice(1), { env: o.env, cwd: o.cwd, stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', o.stderr ?? 'pipe'] });
    const out: Buffer[] = [], err: Buffer[] = [];
    const sizes = [0, 0];
    let timedOut = false, overflow = false;
    const kill = (sig: NodeJS.Signals) => { if (p.exitCode === null && p.signalCode === null) p.kill(sig); };
    const keep = (into: Buffer[], i: 0 | 1) => (d: Buffer) => {
      if (sizes[i]! + d.length > max) { overflow = true; kill('SIGKILL'); d = d.subarray(0, max - sizes[i]!); }
      sizes[i] = sizes[i]! + d.length;
      into.push(d);
    };
    p.stdout!.on('data', keep(out, 0));
    p.stderr?.on('data', keep(err, 1));
    let killer: NodeJS.Timeout | undefined;
    const timer = o.timeoutMs === undefined ? undefined : setTimeout(() => {
      timedOut = true;
      kill('SIGTERM');
      killer = setTimeout(() => kill('SIGKILL'), KILL_GRACE_MS);
    }, o.timeoutMs);
    if (o.input !== undefined) {
      p.stdin!.on('error', () => undefined); // it exited without reading all: its status says why
      p.stdin!.end(o.input);
    }
    let unstarted = false;
    p.on('error', (e) => {
      if (p.pid !== undefined) return; // a signal not sent: it runs on, and its end tells
      unstarted = true;
      clearTimeout(timer);
      clearTimeout(killer);
      reject(notInstalled(argv[0]!, o, e));
    });
    // killed by us: what it started may hold its pipes open, and nothing more is wanted from them
    p.once('exit', () => { if (timedOut || overflow) { p.stdout!.destroy(); p.stderr?.destroy(); } });
    p.once('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killer);
      if (unstarted) return; // 'error' said why
      const r: Result = { stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), code, signal, pid: p.pid };
      if (overflow) reject(tooMuch(name, max, o));
      else if (timedOut) reject(failed(name, r, o, o.timeoutMs));
      else if (!succeeded(r, o.ok)) reject(failed(name, r, o));
      else resolve(r);
    });
  });
}

/** run() for callers that cannot wait (constructors, checks at start-up, synchronous test
 * helpers): the same options and errors, but a timeout kills with SIGTERM only. */
export function runSync(argv: readonly string[], o: RunOptions = {}): Result {
  const cmd = full(argv, o);
  const name = o.name ?? argv.join(' ');
  const max = o.maxOutput ?? DEFAULT_MAX_OUTPUT;
  const r = spawnSync(cmd[0]!, cmd.slice(1), { env: o.env, cwd: o.cwd, input: o.input, encoding: 'utf8', timeout: o.timeoutMs, maxBuffer: max,
    stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', o.stderr ?? 'pipe'] });
  const res: Result = { stdout: r.stdout ?? '', stderr: r.stderr ?? '', code: r.status, signal: r.signal, pid: r.pid };
  const e = r.error as NodeJS.ErrnoException | undefined;
  if (e?.code === 'ETIMEDOUT') throw failed(name, res, o, o.timeoutMs);
  if (e?.code === 'ENOBUFS') throw tooMuch(name, max, o);
  if (e) throw notInstalled(argv[0]!, o, e);
  if (!succeeded(res, o.ok)) throw failed(name, res, o);
  return res;
}

export interface StartOptions extends CommonOptions {
  /** stdin, stdout and stderr: 'pipe' (the handle's streams), 'ignore' or 'inherit'
   * (default: stdin ignored, stdout and stderr piped; stderr's last 64 KiB are kept) */
  stdio?: ['pipe' | 'ignore' | 'inherit', 'pipe' | 'ignore' | 'inherit', 'pipe' | 'ignore' | 'inherit'];
  /** keep all of its stdout (piped) in Child.stdout, for programs that report when done */
  keepStdout?: boolean;
}

/** How a started program ended. */
export interface Exit { code: number | null; signal: NodeJS.Signals | null }

/** A long-running child started by start(). */
export class Child {
  readonly proc: ChildProcess;
  readonly name: string;
  /** the end of its stderr (when piped), for error messages */
  stderr = '';
  /** its stdout, with keepStdout */
  stdout = '';
  /** why it could not start, if it could not (its cause: the system's error) */
  private error: QosError | null = null;
  /** resolves when it has ended and its output is read (never rejects) */
  readonly exited: Promise<Exit>;

  constructor(readonly argv: readonly string[], private readonly o: StartOptions = {}) {
    const cmd = full(argv, o);
    this.name = o.name ?? argv[0]!;
    this.proc = spawn(cmd[0]!, cmd.slice(1), { env: o.env, cwd: o.cwd, stdio: (o.stdio ?? ['ignore', 'pipe', 'pipe']) as StdioOptions });
    this.proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
      if (this.stderr.length > STDERR_KEPT) this.stderr = this.stderr.slice(-STDERR_KEPT);
    });
    if (o.keepStdout) this.proc.stdout?.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    this.proc.stdin?.on('error', () => undefined); // it exited: its status says why
    this.exited = new Promise((resolve) => {
      this.proc.on('error', (e) => {
        if (this.proc.pid !== undefined) return; // a signal not sent: it runs on, and its end tells
        this.error = notInstalled(argv[0]!, o, e);
        resolve({ code: null, signal: null });
      });
      this.proc.once('close', (code, signal) => resolve({ code, signal }));
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** The system's error if it could not be started (ENOENT: not installed), once exited resolved. */
  get startError(): NodeJS.ErrnoException | null {
    return (this.error?.cause as NodeJS.ErrnoException | undefined) ?? null;
  }

  /** Whether it is still running. */
  get running(): boolean {
    return this.error === null && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** The error for how it ended (or why it could not start). */
  failure(e: Exit): QosError {
    return this.error ?? failed(this.name, { stdout: '', stderr: this.stderr, code: e.code, signal: e.signal, pid: this.pid }, this.o);
  }

  /** Waits for it to end; throws (failure()) unless it exited with a status in ok; past
   * timeoutMs, if given, kills it and throws that it timed out. */
  async wait(ok: readonly number[] = [0], timeoutMs?: number): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => { if (timeoutMs !== undefined) timer = setTimeout(() => r('late'), timeoutMs); });
    const e = await Promise.race([this.exited, late]).finally(() => clearTimeout(timer));
    if (e === 'late') {
      this.kill();
      throw failed(this.name, { stdout: '', stderr: this.stderr, code: null, signal: 'SIGKILL', pid: this.pid }, this.o, timeoutMs);
    }
    if (this.error || e.code === null || !ok.includes(e.code)) throw this.failure(e);
    return e;
  }

  /** Waits until `text` appears in its stderr (or, from: 'stdout', its stdout); throws if it
   * ends first or timeoutMs passes, with what it said. */
  until(text: string, timeoutMs: number, from: 'stderr' | 'stdout' = 'stderr'): Promise<void> {
    const stream = from === 'stderr' ? this.proc.stderr : this.proc.stdout;
    let seen = '';
    return new Promise((resolve, reject) => {
      const done = (err?: QosError) => { clearTimeout(timer); stream?.off('data', look); err ? reject(err) : resolve(); };
      const look = (d: Buffer | string) => { seen = (seen + d).slice(-(text.length + 65536)); if (seen.includes(text)) done(); };
      const timer = setTimeout(() => done(new QosError(this.o.code ?? 'QOS_ERR_ENVIRONMENT', `${this.name} did not say "${text}" within ${timeoutMs} ms${this.stderr.trim() ? `: ${firstLines(this.stderr)}` : ''}`)), timeoutMs);
      stream?.on('data', look);
      void this.exited.then((e) => done(this.failure(e)));
    });
  }

  /** Sends sig (default SIGTERM), then SIGKILL if it has not ended after graceMs; resolves once
   * it has ended (and its output is read, unless it had to be killed). */
  async stop(sig: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<Exit> {
    if (this.running) this.proc.kill(sig);
    const timer = setTimeout(() => {
      this.kill();
      // what it started may hold its pipes open: its end is not worth waiting for any more
      this.proc.stdout?.destroy();
      this.proc.stderr?.destroy();
    }, graceMs);
    try { return await this.exited; } finally { clearTimeout(timer); }
  }

  /** SIGKILL now, without waiting (error paths and clean-ups). */
  kill(): void {
    if (this.running) this.proc.kill('SIGKILL');
  }
}

/** Starts a long-running program (inside a network namespace if o.netns). */
export function start(argv: readonly string[], o: StartOptions = {}): Child {
  return new Child(argv, o);
}
