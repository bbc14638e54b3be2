/* The daemon's side of Safe Tcl policies (the paper's own scripts): a tclsh child under
 * prlimit running tcl-host.tcl, which calls the proc named after each message type with the
 * message's tokens, as in the paper (4.2), users taking turns. Each call has a time limit
 * inside Tcl. The child is a lane of host.ts (per-user budget, answer time; users moved out
 * get a second child); one that dies or does not answer long after its deadline is killed and
 * restarted, the call it was running blamed, the others falling through to the rules. */

import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { setPriority } from 'node:os';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { QosError } from '../errors.js';
import { start } from '../exec.js';
import { ERRNO_NAMES, dscpValue } from '../policy/dscp.js';
import type { Decision } from '../policy/engine.js';
import { formatList, parseList } from '../protocol/tcl-list.js';
import { asksTc, tcRequestOf, type TcActionFields } from '../tc/request.js';
import { reserveRequestOf } from '../rsvp/reserve-request.js';
import { HANDLERS, NO_STATE, type HandlerName } from './js-sandbox.js';
import { cpuMs } from './cpu.js';
import { Lane, ScriptHostBase, type HostOptions, type ScriptOutcome } from './host.js';

const HOST = fileURLToPath(new URL('../../src/script/tcl-host.tcl', import.meta.url));
const SPRINTLIB = fileURLToPath(new URL('../../src/script/SprintLib.tcl', import.meta.url));

/** A Tcl reply string ("TOS 48", "DSCP EF PRIORITY 5", "DENY EACCES", "") as a decision;
 * empty means the rules decide. SERVICE, TEMPLATE and MODE ask for a traffic-control flow
 * for the socket, as a rule's service, template and mode do (docs/traffic-control.md).
 * RESERVE service (guaranteed, controlled-load) with TEMPLATE name, or RESERVE characterize,
 * asks for an RSVP reservation, as a rule's reserve does (docs/rsvp.md); a DSCP or TOS with
 * it is the mark once admitted. */
export function parseTclReply(text: string): { decision: Decision | undefined } | { error: string } {
  const t = text.trim().split(/\s+/).filter(Boolean);
  if (t.length === 0) return { decision: undefined };
  const d: Decision = {};
  const flow: TcActionFields = {};
  let reserve: string | undefined;
  const bad = (why = 'not TOS n, DSCP x, PRIORITY n, DENY ENAME, OVERRIDE, SERVICE type, TEMPLATE name, MODE mode or RESERVE service|characterize') => ({ error: `returned ${JSON.stringify(text.slice(0, 120))}: ${why}` });
  for (let i = 0; i < t.length; i++) {
    const k = t[i]!, v = t[i + 1];
    if (k === 'OVERRIDE') { d.override = true; continue; }
    i++;
    if (k === 'TOS' && v !== undefined && /^\d+$/.test(v) && Number(v) <= 255) d.tos = Number(v);
    else if (k === 'DSCP' && v !== undefined && dscpValue(v) !== undefined) d.dscp = dscpValue(v);
    else if (k === 'PRIORITY' && v !== undefined && /^[0-7]$/.test(v)) d.priority = Number(v);
    else if (k === 'DENY' && v !== undefined && ERRNO_NAMES.includes(v)) d.deny = v;
    else if (k === 'SERVICE' && v !== undefined) flow.service = v;
    else if (k === 'TEMPLATE' && v !== undefined) flow.template = v;
    else if (k === 'MODE' && v !== undefined) flow.mode = v;
    else if (k === 'RESERVE' && v !== undefined) reserve = v;
    else return bad();
  }
  if (reserve !== undefined) {
    if (d.deny) return bad('DENY cannot be combined with RESERVE');
    if (flow.service !== undefined || flow.mode !== undefined) return bad('RESERVE names its service itself (RESERVE guaranteed TEMPLATE H263CIF); SERVICE and MODE are for a traffic-control flow');
    const mark = d.dscp ?? (d.tos !== undefined ? d.tos >> 2 : null);
    delete d.dscp; delete d.tos;
    try {
      d.reserve = reserve.toLowerCase() === 'characterize' ? reserveRequestOf({ characterize: true, ...(flow.template ? { template: flow.template } : {}) }, mark) : reserveRequestOf({ service: reserve, template: flow.template }, mark);
    } catch (e) { return bad((e as Error).message); }
    return { decision: d };
  }
  if (asksTc(flow)) {
    if (d.deny) return bad('DENY cannot be combined with a flow');
    try { d.tc = tcRequestOf(flow); } catch (e) { return bad((e as Error).message); }
  }
  return { decision: d };
}

export type TclHostOptions = HostOptions;

type Started = { handlers: HandlerName[] } | { fault: string; line: number };

/** One tclsh child: a lane of host.ts. */
class TclLane extends Lane {
  child!: ChildProcessWithoutNullStreams;
  /** the call tclsh runs now, as its last answer said; 0: it had none to run then, so it runs
   * the oldest call not answered, if any (host.ts blames that one) */
  private current = 0;
  constructor(private readonly host: TclHost, index: number, movedOut: boolean) {
    super(index, movedOut);
  }

  spawn(): Promise<Started> {
    const { file, o } = this.host;
    const mem = Math.max(o.limits.memoryBytes * 4, 256 * 2 ** 20); // address space, not heap: tclsh maps its libraries too
    const c = start(['prlimit', `--as=${mem}`, '--', 'tclsh8.6', HOST, dirname(file), file.slice(dirname(file).length + 1), SPRINTLIB], { stdio: ['pipe', 'pipe', 'pipe'] });
    const child = c.proc as ChildProcessWithoutNullStreams;
    this.child = child;
    this.current = 0;
    child.stdout.setEncoding('utf8');
    return new Promise((resolve) => {
      let started = false;
      let buf = '';
      child.stdout.on('data', (d: string) => {
        if (this.child !== child) return; // replaced: what it still says is not for us
        buf += d;
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (!started) {
            started = true;
            let t: string[];
            try { t = parseList(line); } catch { t = ['fault', line]; }
            if (t[0] === 'ready') {
              // Below the daemon once started, as the JavaScript workers: a Tcl loop must not
              // take its CPU.
              try { if (child.pid && o.limits.nice !== null) setPriority(child.pid, o.limits.nice); } catch { /* not permitted: same priority */ }
              this.inflight.restarted();
              resolve({ handlers: parseList(t[1] ?? '').filter((x): x is HandlerName => (HANDLERS as readonly string[]).includes(x)) });
            } else resolve({ fault: t[1] ?? line, line: Number(t[2] ?? 0) });
          } else this.line(line);
        }
      });
      void c.exited.then(({ code }) => {
        const e = c.startError;
        if (!started) { started = true; resolve({ fault: e ? `cannot run tclsh8.6 under prlimit: ${e.message}` : `tclsh exited (${code})`, line: 0 }); return; }
        if (this.child === child && !e) this.host.lost(this, `tclsh exited (${code})`);
      });
    });
  }

  running(): number {
    return this.current;
  }

  cpuMs(): number | null {
    return this.child.pid ? cpuMs(`/proc/${this.child.pid}/stat`) : null;
  }

  /** One answer from tcl-host.tcl: "ID status result NEXT" (call ID ended, or was not run:
   * status late; it starts call NEXT, if any). */
  private line(text: string): void {
    let t: string[];
    try { t = parseList(text); } catch { return; }
    const id = Number(t[0]);
    this.current = Number(t[3] || 0);
    if (t[1] === 'ok') {
      const r = parseTclReply(t[2] ?? '');
      if ('error' in r) this.host.answered(this, id, undefined, 'error', { message: r.error });
      else this.host.answered(this, id, r.decision, r.decision === undefined ? 'fallthrough' : 'decided');
    } else if (t[1] === 'late') this.host.answered(this, id, undefined, 'late');
    else this.host.answered(this, id, undefined, t[1] === 'timeout' ? 'timeout' : 'error', { message: t[2] ?? 'error' });
  }

  /** Gives tclsh a call: "ID DEADLINE_MS UID BY Type tokens..." (BY: when its answer time is
   * up, ms since the epoch, 0 for none). */
  post(id: number, uid: number, deadlineMs: number, by: number, tokens: string[]): boolean {
    this.child.stdin.write(`${formatList([String(id), String(deadlineMs), String(uid), String(by), ...tokens])}\n`);
    return true;
  }
}

export class TclHost extends ScriptHostBase<TclLane> {
  private constructor(file: string, o: TclHostOptions) {
    super(file, o, 'tclsh restarted');
  }

  /** Starts the child; throws QOS_ERR_POLICY_INVALID if the script does not load. */
  static async start(file: string, o: TclHostOptions): Promise<TclHost> {
    const h = new TclHost(file, o);
    const lane = new TclLane(h, 0, false);
    h.lanes.push(lane);
    const status = await lane.spawn();
    if ('fault' in status) {
      await h.close();
      throw new QosError('QOS_ERR_POLICY_INVALID', `${file}: ${status.fault}`, [{ file, line: status.line || undefined, message: status.fault }]);
    }
    h.handlers = new Set(status.handlers);
    return h;
  }

  /** Calls the proc named after the message type with the message's tokens (type first). */
  decide(handler: HandlerName, uid: number, req: { tokens(): string[] }): Promise<ScriptOutcome> {
    return this.submit(handler, uid, NO_STATE, (lane, id, by) => lane.post(id, uid, this.o.limits.deadlineMs, by, req.tokens()));
  }

  protected openLane(index: number): TclLane {
    const l = new TclLane(this, index, true);
    l.restarting = true;
    void l.spawn().then((st) => {
      l.restarting = false;
      if ('fault' in st) this.o.log?.error({ script: this.file, error: st.fault }, 'tclsh for users moved out could not start');
    });
    return l;
  }

  protected async replaceLane(l: TclLane): Promise<void> {
    l.child.kill('SIGKILL');
    const st = await l.spawn();
    if ('fault' in st) this.o.log?.error({ script: this.file, error: st.fault }, 'policy script could not restart');
  }

  protected stopLane(l: TclLane): Promise<void> {
    l.child?.kill('SIGKILL');
    return Promise.resolve();
  }
}
