/* `qos bench hostile`: what another local user's programs get from the daemon while one user
 * attacks it. A legitimate user asks `requests` questions one after the other (as an agent
 * does) and times each answer, first on a quiet daemon, then while a hostile user holds
 * 21,000 connections, floods malformed lines from 8 connections, sends well-formed requests as
 * fast as the daemon takes them from 8 connections, or makes a policy script spin and hang on
 * every call from 8 connections (JavaScript, then Safe Tcl). Both users are uids of their own (numeric,
 * no account needed: HOSTILE_UID, LEGIT_UID) running hostile-client.js under setpriv, so
 * the daemon tells them apart as it would in real life, from the kernel. The agent gives up
 * on an answer after 50 ms: each p99 must stay under that (target), and aims at 10 ms. */

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { metricOf } from '../daemon/admin-client.js';
import { DaemonChild } from '../daemon/child.js';
import { QosError } from '../errors.js';
import { start, type Child } from '../exec.js';

/** The daemon's script workers in the script scenario; calls go to worker uid % SCRIPT_WORKERS,
 * and the two uids share one: the case where one user's calls could take the script away
 * from the other. */
const SCRIPT_WORKERS = 2;
export const HOSTILE_UID = 64_100;
export const LEGIT_UID = HOSTILE_UID + SCRIPT_WORKERS;
export const CLIENT = new URL('./hostile-client.js', import.meta.url).pathname;

export interface HostileBenchOptions { requests: number; progress?: (m: string) => void }

interface Figures { p50: number; p99: number; max: number; answered: number; as_policy_says: number }

export interface HostileBenchResult {
  legit_p99_ms_quiet: number;
  legit_p99_ms_under_fd_flood: number;
  legit_p99_ms_under_garbage: number;
  /** a user sending well-formed requests as fast as the daemon takes them, from 8 connections */
  legit_p99_ms_under_request_flood: number;
  legit_p99_ms_under_script_abuse: number;
  /** the same with a Safe Tcl script (one tclsh: both users share it) */
  legit_p99_ms_under_tcl_script_abuse: number;
  /** each scenario: the legitimate user's answer times (p50, p99, max in ms), how many of the
   * requests were answered, and the share answered as the policy says (by the script where
   * the script decides) */
  scenarios: Record<'quiet' | 'fd_flood' | 'garbage' | 'request_flood' | 'script_abuse' | 'tcl_script_abuse', Figures>;
  /** what the hostile user got: connections held and refused, lines refused, script calls */
  hostile: Record<string, number>;
  targets: Record<string, { value: number; limit: number; ok: boolean }>;
  setup: { requests: number; hostile_uid: number; legit_uid: number };
}

/** A program run as uid:gid whose stdout is one JSON object per line. */
export interface UserProc { proc: Child; next(): Promise<Record<string, unknown>>; stop(): Promise<void> }

/** hostile-client.js with args, run as uid and gid (no supplementary groups). */
export function runClientAs(uid: number, gid: number, args: string[]): UserProc {
  const proc = start(['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', process.execPath, CLIENT, ...args],
    { stdio: ['pipe', 'pipe', 'pipe'], code: 'QOS_ERR_BENCH', name: `hostile-client ${args[0]} as uid ${uid}` });
  let buf = '';
  const lines: string[] = [];
  const waiting: ((l: string) => void)[] = [];
  proc.proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const l = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const w = waiting.shift();
      if (w) w(l); else lines.push(l);
    }
  });
  return {
    proc,
    next: () => new Promise((resolve, reject) => {
      const take = (l: string) => resolve(JSON.parse(l) as Record<string, unknown>);
      if (lines.length) take(lines.shift()!);
      else {
        waiting.push(take);
        void proc.exited.then((e) => reject(proc.failure(e)));
      }
    }),
    stop: async () => { proc.proc.stdin!.end(); await proc.exited; },
  };
}


const RULES = `rules:
  - { name: web, match: { event: connect }, action: { dscp: CS1 } }
`;
// The script decides every connect (AF41, where the rules would say CS1); for the hostile
// user's calls to port 1 it spins to its deadline, to port 2 it hangs its worker in a
// built-in call no deadline interrupts.
const SCRIPT = `export function Connect(ev) {
  if (ev.uid === ${HOSTILE_UID} && ev.remote.port === 1) while (true) {}
  if (ev.uid === ${HOSTILE_UID} && ev.remote.port === 2) JSON.parse('[' + '12345,'.repeat(3e6) + '1]');
  return { dscp: 'AF41' };
}
`;

// The same in Safe Tcl (the proc gets the kernel's uid): spins to its deadline on port 1; a
// Tcl loop is always interruptible, so port 2 spins too.
const TCL = `proc Connect { pid uid cmd fd address sqos gqos } {
  if {$uid == ${HOSTILE_UID}} { while 1 {} }
  return "DSCP AF41"
}
`;

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(s.length * q))]! : NaN;
}

const round2 = (x: number) => Math.round(x * 100) / 100;

export async function benchHostile(o: HostileBenchOptions): Promise<HostileBenchResult> {
  if (process.getuid?.() !== 0) throw new QosError('QOS_ERR_ENVIRONMENT', 'qos bench hostile needs root: it runs its two users\' programs under their own uids (setpriv)');
  const say = o.progress ?? (() => undefined);
  const dir = mkdtempSync(join(tmpdir(), 'qosd-bench-hostile-'));
  chmodSync(dir, 0o755); // the two users reach the sockets
  const hostile: Record<string, number> = {};
  let n = 0;
  const daemon = async (policy: string, files: Record<string, string> = {}, args: string[] = []) => {
    const d = join(dir, `d${n++}`);
    const { mkdirSync } = await import('node:fs');
    mkdirSync(d, { mode: 0o755 });
    for (const [f, text] of Object.entries(files)) writeFileSync(join(d, f), text);
    return new DaemonChild(d, policy, ['--kernel', 'off', ...args]).start();
  };
  /** The legitimate user's requests against d, and how many got `want` (the policy's answer). */
  const legit = async (d: DaemonChild, want: string): Promise<Figures> => {
    const p = runClientAs(LEGIT_UID, LEGIT_UID, ['ask', d.socket, String(o.requests), 'Connect 1 0 x %d {2 192.0.2.1 443} {} {}']);
    const r = (await p.next()) as { answered: number; ms: number[]; counts: Record<string, number> };
    await p.stop();
    const right = r.counts[want] ?? 0;
    return { p50: round2(quantile(r.ms, 0.5)), p99: round2(quantile(r.ms, 0.99)), max: round2(Math.max(...r.ms)), answered: r.answered, as_policy_says: round2(right / o.requests) };
  };
  try {
    const scenarios = {} as HostileBenchResult['scenarios'];
    say('quiet daemon');
    let d = await daemon(RULES);
    scenarios.quiet = await legit(d, 'DSCP 8');
    await d.stop();

    say('a user holding 21,000 connections');
    d = await daemon(RULES);
    const holders = [runClientAs(HOSTILE_UID, HOSTILE_UID, ['hold', d.socket, '10500']), runClientAs(HOSTILE_UID, HOSTILE_UID, ['hold', d.socket, '10500'])];
    for (const h of holders) await h.next();
    scenarios.fd_flood = await legit(d, 'DSCP 8');
    hostile.connections_refused = await metricOf(d.admin, 'qosd_agent_connections_refused_total');
    for (const h of holders) await h.stop();
    await d.stop();

    say('a user flooding malformed lines from 8 connections');
    d = await daemon(RULES);
    const flood = runClientAs(HOSTILE_UID, HOSTILE_UID, ['garbage', d.socket, '8']);
    await flood.next();
    scenarios.garbage = await legit(d, 'DSCP 8');
    hostile.malformed_lines_handled = await metricOf(d.admin, 'qosd_errors_total', 'QOS_ERR_PROTOCOL');
    await flood.stop();
    hostile.garbage_connections = Number((await flood.next()).connections);
    await d.stop();

    say('a user sending well-formed requests as fast as the daemon answers, from 8 connections');
    d = await daemon(RULES);
    const requests = runClientAs(HOSTILE_UID, HOSTILE_UID, ['requests', d.socket, '8']);
    await requests.next();
    scenarios.request_flood = await legit(d, 'DSCP 8');
    await requests.stop();
    hostile.requests_answered = Number((await requests.next()).answered);
    await d.stop();

    say('a user whose script calls spin and hang, from 8 connections');
    d = await daemon(`script: policy.js\n${RULES}`, { 'policy.js': SCRIPT }, ['--script-workers', String(SCRIPT_WORKERS)]);
    const abuse = runClientAs(HOSTILE_UID, HOSTILE_UID, ['abuse', d.socket, '8']);
    await abuse.next();
    scenarios.script_abuse = await legit(d, 'DSCP 34');
    await abuse.stop();
    hostile.script_calls_asked = Number((await abuse.next()).asked);
    hostile.script_workers_replaced = await metricOf(d.admin, 'qosd_script_worker_restarts_total');
    await d.stop();

    say('the same with a Safe Tcl script');
    d = await daemon(`script: policy.tcl\n${RULES}`, { 'policy.tcl': TCL });
    const tclAbuse = runClientAs(HOSTILE_UID, HOSTILE_UID, ['abuse', d.socket, '8']);
    await tclAbuse.next();
    scenarios.tcl_script_abuse = await legit(d, 'DSCP 34');
    await tclAbuse.stop();
    hostile.tcl_script_calls_asked = Number((await tclAbuse.next()).asked);
    await d.stop();

    const targets: HostileBenchResult['targets'] = {};
    // Every request answered within the agent's timeout, and answered as the policy says: by
    // the rules, always; by the script where it decides, but for the calls that were waiting
    // on a shared worker when the hostile user first hung it (nothing interrupts a running
    // built-in: they get the rules until it is replaced, docs/scripts.md). An old daemon
    // looked fast under script abuse because the rules answered for both users.
    for (const k of ['fd_flood', 'garbage', 'request_flood', 'script_abuse', 'tcl_script_abuse'] as const) {
      const f = scenarios[k];
      targets[`legit_p99_ms_under_${k}`] = { value: f.p99, limit: 50, ok: f.p99 <= 50 && f.answered === o.requests && (k.includes('script') || f.as_policy_says === 1) };
    }
    for (const k of ['script_abuse', 'tcl_script_abuse'] as const) {
      targets[`legit_script_decided_under_${k}`] = { value: scenarios[k].as_policy_says, limit: 0.95, ok: scenarios[k].as_policy_says >= 0.95 };
    }
    return {
      legit_p99_ms_quiet: scenarios.quiet.p99,
      legit_p99_ms_under_fd_flood: scenarios.fd_flood.p99,
      legit_p99_ms_under_garbage: scenarios.garbage.p99,
      legit_p99_ms_under_request_flood: scenarios.request_flood.p99,
      legit_p99_ms_under_script_abuse: scenarios.script_abuse.p99,
      legit_p99_ms_under_tcl_script_abuse: scenarios.tcl_script_abuse.p99,
      scenarios, hostile, targets,
      setup: { requests: o.requests, hostile_uid: HOSTILE_UID, legit_uid: LEGIT_UID },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
