/* The daemon's side of Safe Tcl policies (the paper's own scripts): one tclsh child under
 * prlimit running tcl-host.tcl, which calls the proc named after each message type with the
 * message's tokens, as in the paper (4.2). Each call has a time limit inside Tcl; a child that
 * dies or does not answer long after its deadline is killed and restarted, and the calls it
 * held fall through to the rules. */

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { setPriority } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { QosError } from '../errors.js';
import { ERRNO_NAMES, dscpValue } from '../policy/dscp.js';
import type { Decision } from '../protocol/messages.js';
import { formatList, parseList } from '../protocol/tcl-list.js';
import { HANDLERS, type HandlerName, type SandboxLimits } from './js-sandbox.js';
import { HANG_GRACE_MS, logFault, SCRIPT_NICE, type ScriptOutcome } from './pool.js';
import { InFlight } from './inflight.js';
import { Breaker } from './breaker.js';

const HOST = fileURLToPath(new URL('../../src/script/tcl-host.tcl', import.meta.url));
const SPRINTLIB = fileURLToPath(new URL('../../src/script/SprintLib.tcl', import.meta.url));

/** A Tcl reply string ("TOS 48", "DSCP EF PRIORITY 5", "DENY EACCES", "") as a decision;
 * empty means the rules decide. */
export function parseTclReply(text: string): { decision: Decision | undefined } | { error: string } {
  const t = text.trim().split(/\s+/).filter(Boolean);
  if (t.length === 0) return { decision: undefined };
  const d: Decision = {};
  for (let i = 0; i < t.length; i++) {
    const k = t[i]!, v = t[i + 1];
    if (k === 'OVERRIDE') { d.override = true; continue; }
    i++;
    if (k === 'TOS' && v !== undefined && /^\d+$/.test(v) && Number(v) <= 255) d.tos = Number(v);
    else if (k === 'DSCP' && v !== undefined && dscpValue(v) !== undefined) d.dscp = dscpValue(v);
    else if (k === 'PRIORITY' && v !== undefined && /^[0-7]$/.test(v)) d.priority = Number(v);
    else if (k === 'DENY' && v !== undefined && ERRNO_NAMES.includes(v)) d.deny = v;
    else return { error: `returned ${JSON.stringify(text.slice(0, 120))}: not TOS n, DSCP x, PRIORITY n, DENY ENAME or OVERRIDE` };
  }
  return { decision: d };
}

interface Pending { resolve: (o: ScriptOutcome) => void; sent: number; handler: HandlerName }

export interface TclHostOptions {
  limits: SandboxLimits;
  log?: Logger;
  onCall?: (handler: HandlerName, o: ScriptOutcome) => void;
  onRestart?: () => void;
}

export class TclHost {
  handlers: ReadonlySet<HandlerName> = new Set();
  private child!: ChildProcessWithoutNullStreams;
  private readonly inflight = new InFlight<Pending>();
  private nextId = 1;
  private buf = '';
  private restarting = false;
  private closed = false;
  private readonly watchdog: NodeJS.Timeout;
  private readonly breaker: Breaker;

  private constructor(readonly file: string, private readonly o: TclHostOptions) {
    this.breaker = new Breaker(file, o.log);
    this.watchdog = setInterval(() => this.watch(), 50);
    this.watchdog.unref();
  }

  /** Starts the child; throws QOS_ERR_POLICY_INVALID if the script does not load. */
  static async start(file: string, o: TclHostOptions): Promise<TclHost> {
    const h = new TclHost(file, o);
    const status = await h.spawn();
    if ('fault' in status) {
      await h.close();
      throw new QosError('QOS_ERR_POLICY_INVALID', `${file}: ${status.fault}`, [{ file, line: status.line || undefined, message: status.fault }]);
    }
    h.handlers = new Set(status.handlers);
    return h;
  }

  private spawn(): Promise<{ handlers: HandlerName[] } | { fault: string; line: number }> {
    const mem = Math.max(this.o.limits.memoryBytes * 4, 256 * 2 ** 20); // address space, not heap: tclsh maps its libraries too
    const child = spawn('prlimit', [`--as=${mem}`, '--', 'tclsh8.6', HOST, dirname(this.file), this.file.slice(dirname(this.file).length + 1), SPRINTLIB], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.buf = '';
    // Below the daemon, as the JavaScript workers: a Tcl loop must not take its CPU.
    try { if (child.pid) setPriority(child.pid, SCRIPT_NICE); } catch { /* not permitted: same priority */ }
    child.stdout.setEncoding('utf8');
    child.stderr.resume();
    child.stdin.on('error', () => undefined);
    return new Promise((resolve) => {
      let started = false;
      child.stdout.on('data', (d: string) => {
        this.buf += d;
        for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
          const line = this.buf.slice(0, nl);
          this.buf = this.buf.slice(nl + 1);
          if (!started) {
            started = true;
            let t: string[];
            try { t = parseList(line); } catch { t = ['fault', line]; }
            if (t[0] === 'ready') resolve({ handlers: parseList(t[1] ?? '').filter((x): x is HandlerName => (HANDLERS as readonly string[]).includes(x)) });
            else resolve({ fault: t[1] ?? line, line: Number(t[2] ?? 0) });
          } else this.reply(line);
        }
      });
      child.once('exit', (code) => {
        if (!started) { started = true; resolve({ fault: `tclsh exited (${code})`, line: 0 }); return; }
        if (this.child === child) this.lost(`tclsh exited (${code})`);
      });
      child.once('error', (e) => { if (!started) { started = true; resolve({ fault: `cannot run tclsh8.6 under prlimit: ${e.message}`, line: 0 }); } });
    });
  }

  private reply(line: string): void {
    let t: string[];
    try { t = parseList(line); } catch { return; }
    const id = Number(t[0]);
    const taken = this.inflight.take(id);
    if (!taken) return;
    const { p, ms } = taken;
    let o: ScriptOutcome;
    if (t[1] === 'ok') {
      const r = parseTclReply(t[2] ?? '');
      o = 'error' in r ? { decision: undefined, status: 'error', fault: { message: r.error }, ms } : { decision: r.decision, status: r.decision === undefined ? 'fallthrough' : 'decided', ms };
    } else {
      o = { decision: undefined, status: t[1] === 'timeout' ? 'timeout' : 'error', fault: { message: t[2] ?? 'error' }, ms };
    }
    this.done(p, o);
  }

  private done(p: Pending, o: ScriptOutcome): void {
    this.o.onCall?.(p.handler, o);
    this.breaker.record(p.handler, o.status);
    logFault(this.o.log, this.file, p.handler, o, 'tclsh restarted');
    p.resolve(o);
  }

  /** Calls the proc named after the message type with the message's tokens (type first). */
  decide(handler: HandlerName, _uid: number, req: { tokens(): string[] }): Promise<ScriptOutcome> {
    const refused = this.breaker.refuse(handler, this.closed || this.inflight.full);
    if (refused) {
      const o: ScriptOutcome = { decision: undefined, status: refused, ms: 0 };
      this.o.onCall?.(handler, o);
      return Promise.resolve(o);
    }
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.inflight.add(id, { resolve, sent: Date.now(), handler });
      this.child.stdin.write(`${formatList([String(id), String(this.o.limits.deadlineMs), ...req.tokens()])}\n`);
    });
  }

  private watch(): void {
    if (!this.restarting && this.inflight.overdue(this.o.limits.deadlineMs + HANG_GRACE_MS)) void this.restart('killed');
  }

  private lost(why: string): void {
    if (this.closed || this.restarting) return;
    this.o.log?.error({ script: this.file, why }, 'tclsh for the policy script lost; starting another');
    void this.restart('killed');
  }

  private async restart(status: 'killed'): Promise<void> {
    this.restarting = true;
    const old = this.child;
    const now = Date.now();
    for (const p of this.inflight.drain()) this.done(p, { decision: undefined, status, ms: now - p.sent });
    this.o.onRestart?.();
    old.kill('SIGKILL');
    const st = await this.spawn();
    this.restarting = false;
    this.inflight.restarted();
    if ('fault' in st) this.o.log?.error({ script: this.file, error: st.fault }, 'policy script could not restart');
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.watchdog);
    for (const p of this.inflight.drain()) p.resolve({ decision: undefined, status: 'fallthrough', ms: 0 });
    this.child?.kill('SIGKILL');
  }
}
