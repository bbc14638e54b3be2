/* `qos bench policy`: policy scripts measured end to end through a real daemon's socket with
 * many concurrent agent-like clients (agent/bench/daemon_load): script decisions per second
 * for JavaScript and for Safe Tcl, what a script adds to a request over the rules alone, and
 * how much a script that always hits its deadline slows other clients' rules-only requests. */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { call } from '../cli/client.js';
import { DaemonChild } from '../daemon/child.js';
import { LineClient } from '../daemon/line-client.js';
import { BENCH_BIN, median, runJson } from './agent.js';

export interface PolicyBenchOptions { threads: number; loadMs: number; rounds: number; progress?: (m: string) => void }

export interface PolicyBenchResult {
  js_decisions_per_s: number;
  tcl_decisions_per_s: number;
  rules_pair_rtt_ns_p50: number;
  js_pair_rtt_ns_p50: number;
  /** a request decided by a JavaScript handler, over the same request decided by the rules */
  js_added_ns_p50: number;
  /** rules-only requests to a daemon whose script (SendTo only) always overruns */
  rules_decisions_per_s: number;
  rules_decisions_per_s_beside_hostile_script: number;
  /** rules-only throughput beside a script that always hits its deadline / without it */
  hostile_ratio: number;
  targets: Record<string, { value: number; limit: number; ok: boolean }>;
  setup: { threads: number; load_ms: number; rounds: number };
}

const RULES = `rules:
  - { name: web, match: { event: connect, remote_port: 1000-65535 }, action: { dscp: AF21 } }
`;
// Decides every Connect itself (the same decision as the rule above): one script call per pair.
const JS = `export function Connect(ev) { return ev.remote && ev.remote.port >= 1000 ? { dscp: 'AF21' } : undefined; }
`;
// Decides both calls of a pair, as the paper's Figure 5 does: the throughput figure.
const JS_BOTH = `export function Socket(ev) { return ev.type === 'stream' ? { priority: 1 } : undefined; }
${JS}`;
// Only SendTo is scripted, and it always overruns its deadline: Socket and Connect stay rules-only.
const HOSTILE = `export function SendTo(ev) { while (true) {} }
`;
const TCL = `proc Socket { pid uid cmd family type protocol fd } { if {$type == 1} { return "PRIORITY 1" } }
proc Connect { pid uid cmd fd address sqos gqos } { if {[lindex $address 2] >= 1000} { return "DSCP AF21" } }
`;

interface Load { decisions: number; decisions_per_s: number; pair_rtt_ns_p50: number; elapsed_ns: number }

/** Calls the script decided, all handlers. */
async function scriptCalls(d: DaemonChild): Promise<number> {
  const m = (await call(d.admin, 'GET', '/metrics')).body;
  let n = 0;
  for (const [, v] of m.matchAll(/^qosd_script_calls_total\{handler="\w+",result="decided"\} (\d+)/gm)) n += Number(v);
  return n;
}

export async function benchPolicy(o: PolicyBenchOptions): Promise<PolicyBenchResult> {
  const say = o.progress ?? (() => undefined);
  const dir = mkdtempSync(join(tmpdir(), 'qosd-bench-policy-'));
  const daemons: DaemonChild[] = [];
  const start = async (name: string, policy: string, files: Record<string, string> = {}) => {
    const d = join(dir, name);
    mkdirSync(d);
    for (const [f, text] of Object.entries(files)) writeFileSync(join(d, f), text);
    const daemon = await new DaemonChild(d, policy).start();
    daemons.push(daemon);
    return daemon;
  };
  const load = (d: DaemonChild, threads = o.threads, ms = o.loadMs) => runJson<Load>([join(BENCH_BIN, 'daemon_load'), d.socket, String(threads), String(ms)]);
  try {
    const rules = await start('rules', RULES);
    const js = await start('js', `script: policy.js\n${RULES}`, { 'policy.js': JS });
    const jsBoth = await start('js-both', `script: policy.js\n${RULES}`, { 'policy.js': JS_BOTH });
    const tcl = await start('tcl', `script: policy.tcl\n${RULES}`, { 'policy.tcl': TCL });
    const hostileD = await start('hostile', `script: policy.js\n${RULES}`, { 'policy.js': HOSTILE });

    const r = { js: [] as number[], tcl: [] as number[], rulesRtt: [] as number[], jsRtt: [] as number[], rules: [] as number[], beside: [] as number[] };
    for (let round = 0; round < o.rounds; round++) {
      say(`round ${round + 1}/${o.rounds}`);
      for (const [d, key] of [[jsBoth, 'js'], [tcl, 'tcl']] as const) {
        const before = await scriptCalls(d);
        const l = load(d);
        r[key].push(((await scriptCalls(d)) - before) / (l.elapsed_ns / 1e9));
      }
      r.rulesRtt.push(load(rules, 1, Math.min(o.loadMs, 1000)).pair_rtt_ns_p50);
      r.jsRtt.push(load(js, 1, Math.min(o.loadMs, 1000)).pair_rtt_ns_p50);
      // Rules-only clients, alone and beside two clients whose every request overruns.
      r.rules.push(load(hostileD).decisions_per_s);
      const stop = { v: false };
      const hostile = hammer(hostileD, stop);
      r.beside.push(load(hostileD).decisions_per_s);
      stop.v = true;
      await hostile;
    }
    const js_decisions_per_s = Math.round(median(r.js));
    const tcl_decisions_per_s = Math.round(median(r.tcl));
    const rulesRtt = median(r.rulesRtt), jsRtt = median(r.jsRtt);
    const rulesRate = median(r.rules), beside = median(r.beside);
    const ratio = Math.round((beside / rulesRate) * 1000) / 1000;
    return {
      js_decisions_per_s, tcl_decisions_per_s,
      rules_pair_rtt_ns_p50: rulesRtt, js_pair_rtt_ns_p50: jsRtt, js_added_ns_p50: jsRtt - rulesRtt,
      rules_decisions_per_s: Math.round(rulesRate), rules_decisions_per_s_beside_hostile_script: Math.round(beside), hostile_ratio: ratio,
      targets: {
        js_decisions_per_s: { value: js_decisions_per_s, limit: 20_000, ok: js_decisions_per_s >= 20_000 },
        tcl_decisions_per_s: { value: tcl_decisions_per_s, limit: 5_000, ok: tcl_decisions_per_s >= 5_000 },
        hostile_ratio: { value: ratio, limit: 0.9, ok: ratio >= 0.9 },
      },
      setup: { threads: o.threads, load_ms: o.loadMs, rounds: o.rounds },
    };
  } finally {
    await Promise.all(daemons.map((d) => d.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Keeps a few connections sending SendTo requests, each of which overruns its deadline. */
async function hammer(d: DaemonChild, stop: { v: boolean }): Promise<void> {
  await Promise.all([0, 1].map(async (k) => {
    const c = new LineClient(d.socket);
    for (let fd = 3; !stop.v; fd++) {
      c.sock.write(`SendTo 1 0 hostile-${k} ${fd} {2 192.0.2.1 53}\n`);
      if ((await c.next()) === null) break;
    }
    c.sock.destroy();
  }));
}
