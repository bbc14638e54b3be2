/* How long a well-behaved user waits for a policy script's decision while another user abuses
 * the script (issue 15): for `qos bench hostile` (legit_p99_ms_under_script_abuse, target
 * <= 50 ms, the agent's timeout; aim <= 10 ms).
 *
 * The scenario: a real daemon with the default script settings (deadline 10 ms, answer time
 * 30 ms, hosts at nice 19) and a script that decides every Connect. The abuser is a real
 * unprivileged user (the daemon tells users apart by SO_PEERCRED) with `abuserConns`
 * connections, each asking again once it has its answer and `abuserPaceMs` have passed (so
 * that what is measured is the script's abuse, not a flood of requests, which costs the same
 * whether the script runs or not): every call spins to its deadline, or (every
 * `hangEvery`-th connection) runs a built-in the deadline cannot stop and hangs its host. The legit user (this process, root) makes one scripted Connect every
 * `intervalMs` on one connection, and is timed from write to reply. With one worker (the
 * default here) both users share it: the worst case. The same legit load alone, first, gives
 * the baseline. */

import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call } from '../daemon/admin-client.js';
import { DaemonChild } from '../daemon/child.js';
import { LineClient } from '../daemon/line-client.js';
import { UserClient } from '../e2e/user-client.js';
import { testUser } from '../e2e/users.js';

export interface ScriptAbuseOptions {
  /** the script's language */
  lang?: 'js' | 'tcl';
  /** how long the legit user is measured, each phase */
  durationMs?: number;
  intervalMs?: number;
  abuserConns?: number;
  /** each abuser connection asks at most once per this many ms */
  abuserPaceMs?: number;
  /** every n-th abuser connection hangs its host instead of spinning (0: none; Tcl: none) */
  hangEvery?: number;
  /** script workers (JavaScript) */
  workers?: number;
  /** extra `qos daemon` arguments */
  daemonArgs?: string[];
  /** the qos CLI entry point to run the daemon from (another build's, to compare) */
  cli?: string;
}

export interface ScriptAbuseResult {
  /** the legit user's request latencies beside the abuser */
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  requests: number;
  /** of the legit user's requests, those the script decided (the rest got the rules') */
  script_decided_ratio: number;
  /** the same load without the abuser */
  alone_p50_ms: number;
  alone_p99_ms: number;
  /** the abuser's calls and how they ended (qosd_script_calls_total for Connect, both users) */
  abuser_requests: number;
  results: Record<string, number>;
  worker_restarts: number;
}

const SCRIPTS = {
  js: `export function Connect(ev) {
  if (ev.remote.port === 666) while (true) {}
  if (ev.remote.port === 667) JSON.parse('[' + '12345,'.repeat(3e6) + '1]');
  return { dscp: 'AF41' };
}
`,
  tcl: `proc Connect { pid uid cmd fd address sqos gqos } {
  if {[lindex $address 2] == 666} { while 1 {} }
  return "DSCP AF41"
}
`,
};
const RULES = `rules:
  - { name: rules, match: { event: connect }, action: { dscp: CS1 } }
`;

function quantile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]! : 0;
}

/** The legit user's requests for ms: latencies, and how many the script decided. */
async function legit(socket: string, ms: number, intervalMs: number): Promise<{ lat: number[]; scripted: number }> {
  const c = new LineClient(socket);
  const lat: number[] = [];
  let scripted = 0;
  try {
    const end = performance.now() + ms;
    for (let fd = 3; performance.now() < end; fd++) {
      const t0 = performance.now();
      c.sock.write(`Connect 1 0 legit ${fd} {2 192.0.2.1 80} {} {}\n`);
      const r = await c.next();
      lat.push(performance.now() - t0);
      if (r === 'DSCP 34') scripted++;
      const left = t0 + intervalMs - performance.now();
      if (left > 0) await new Promise((res) => setTimeout(res, left));
    }
  } finally {
    c.sock.destroy();
  }
  return { lat, scripted };
}

/** Runs the scenario above; needs root (the abuser is a test user run with setpriv). */
export async function scriptAbuseP99(o: ScriptAbuseOptions = {}): Promise<ScriptAbuseResult> {
  const lang = o.lang ?? 'js', durationMs = o.durationMs ?? 3000, intervalMs = o.intervalMs ?? 5;
  const conns = o.abuserConns ?? 8, pace = o.abuserPaceMs ?? 10, hangEvery = lang === 'tcl' ? 0 : o.hangEvery ?? 4;
  const abuser = testUser('sc-bench-abuser');
  const dir = mkdtempSync(join(tmpdir(), 'qosd-bench-abuse-'));
  chmodSync(dir, 0o755); // the abuser reaches the socket through it
  writeFileSync(join(dir, `abuse.${lang}`), SCRIPTS[lang]);
  const daemon = await new DaemonChild(dir, `script: abuse.${lang}\n${RULES}`, ['--script-workers', String(o.workers ?? 1), ...(o.daemonArgs ?? [])], [], o.cli).start();
  const bad = new UserClient(abuser, daemon.socket, conns);
  let stop = false;
  let abuserRequests = 0;
  try {
    const alone = await legit(daemon.socket, durationMs, intervalMs);
    const attacks = Promise.all(Array.from({ length: conns }, async (_, i) => {
      const port = hangEvery > 0 && i % hangEvery === hangEvery - 1 ? 667 : 666;
      for (let fd = 3; !stop; fd++) {
        const t0 = performance.now();
        if ((await bad.ask(`Connect 1 0 abuser ${fd} {2 192.0.2.1 ${port}} {} {}`, i)) === null) break;
        abuserRequests++;
        const left = t0 + pace - performance.now();
        if (left > 0) await new Promise((r) => setTimeout(r, left));
      }
    }));
    await new Promise((r) => setTimeout(r, 200)); // the abuse is under way
    const beside = await legit(daemon.socket, durationMs, intervalMs);
    stop = true;
    await bad.close();
    await attacks;
    const metrics = (await call(daemon.admin, 'GET', '/metrics')).body;
    const results: Record<string, number> = {};
    for (const [, result, n] of metrics.matchAll(/^qosd_script_calls_total\{handler="Connect",result="(\w+)"\} (\d+)/gm)) results[result!] = Number(n);
    const sorted = [...beside.lat].sort((a, b) => a - b), sortedAlone = [...alone.lat].sort((a, b) => a - b);
    const round = (x: number) => Math.round(x * 100) / 100;
    return {
      p50_ms: round(quantile(sorted, 0.5)), p99_ms: round(quantile(sorted, 0.99)), max_ms: round(sorted[sorted.length - 1] ?? 0),
      requests: sorted.length, script_decided_ratio: round(beside.scripted / Math.max(1, sorted.length)),
      alone_p50_ms: round(quantile(sortedAlone, 0.5)), alone_p99_ms: round(quantile(sortedAlone, 0.99)),
      abuser_requests: abuserRequests, results,
      worker_restarts: Number(/^qosd_script_worker_restarts_total (\d+)/m.exec(metrics)?.[1] ?? 0),
    };
  } finally {
    stop = true;
    await bad.close();
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
