/* `qos bench policy`: policy scripts measured end to end through a real daemon's socket with
 * many concurrent agent-like clients (agent/bench/daemon_load): script decisions per second
 * for JavaScript and for Safe Tcl, what a script adds to a request over the rules alone, and
 * how much a script that always hits its deadline slows other clients' rules-only requests. */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { call } from '../daemon/admin-client.js';
import { QosError } from '../errors.js';
import { DaemonChild } from '../daemon/child.js';
import { LineClient } from '../daemon/line-client.js';
import { BENCH_BIN } from './agent.js';
import { median, medianF, runJson, runJsonAsync } from './helpers.js';

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
  /** js_decisions_per_s over rules_decisions_per_s, both from this run: what a script costs,
   * less dependent on how fast the machine happens to be */
  js_to_rules_ratio: number;
  rules_decisions_per_s_beside_hostile_script: number;
  /** rules-only throughput beside a script that always hits its deadline / without it
   * (median of the rounds' ratios: each round measures both, one after the other) */
  hostile_ratio: number;
  /** calls of the hostile script that ran to their deadline, per second, while measured */
  hostile_timeouts_per_s: number;
  /** its calls answered by the rules because the handler was suspended for their user (script/budget.ts) */
  hostile_suspended_per_s: number;
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

/** Window pairs (alone, beside the hostile clients) per round. */
const HOSTILE_WINDOWS = 6;

interface Load { decisions: number; decisions_per_s: number; pair_rtt_ns_p50: number; elapsed_ns: number }

/** Calls the script made with a given result, all handlers. */
async function scriptCalls(d: DaemonChild, result = 'decided'): Promise<number> {
  const m = (await call(d.admin, 'GET', '/metrics')).body;
  let n = 0;
  for (const [, v] of m.matchAll(new RegExp(`^qosd_script_calls_total\\{handler="\\w+",result="${result}"\\} (\\d+)`, 'gm'))) n += Number(v);
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

    const r = { js: [] as number[], tcl: [] as number[], rulesRtt: [] as number[], jsRtt: [] as number[], rules: [] as number[], beside: [] as number[], ratio: [] as number[], timeouts: [] as number[], suspended: [] as number[] };
    for (let round = 0; round < o.rounds; round++) {
      say(`round ${round + 1}/${o.rounds}`);
      for (const [d, key] of [[jsBoth, 'js'], [tcl, 'tcl']] as const) {
        const before = await scriptCalls(d);
        const l = load(d);
        r[key].push(((await scriptCalls(d)) - before) / (l.elapsed_ns / 1e9));
      }
      r.rulesRtt.push(load(rules, 1, Math.min(o.loadMs, 1000)).pair_rtt_ns_p50);
      r.jsRtt.push(load(js, 1, Math.min(o.loadMs, 1000)).pair_rtt_ns_p50);
      // Rules-only clients, alone and beside two clients whose every request overruns, in
      // alternating windows, in ABBA order (this VM's speed drifts over seconds). The loads
      // run in a child, asynchronously, so that the hostile clients keep asking meanwhile.
      const hostile = new Hammer(hostileD);
      let alone = 0, beside = 0, timeouts = 0, suspended = 0, besideNs = 0;
      const windowMs = Math.max(300, Math.round(o.loadMs / 2));
      const run = () => runJsonAsync<Load>([join(BENCH_BIN, 'daemon_load'), hostileD.socket, String(o.threads), String(windowMs)]);
      const measureAlone = async () => {
        await hostile.pause();
        alone += (await run()).decisions_per_s;
      };
      const measureBeside = async () => {
        hostile.resume();
        await new Promise((res) => setTimeout(res, 50)); // its clients are asking again
        const [t0, s0] = [await scriptCalls(hostileD, 'timeout'), await scriptCalls(hostileD, 'suspended')];
        const l = await run();
        timeouts += (await scriptCalls(hostileD, 'timeout')) - t0;
        suspended += (await scriptCalls(hostileD, 'suspended')) - s0;
        beside += l.decisions_per_s;
        besideNs += l.elapsed_ns;
      };
      for (let w = 0; w < HOSTILE_WINDOWS; w++) {
        if (w % 2 === 0) { await measureAlone(); await measureBeside(); } else { await measureBeside(); await measureAlone(); }
      }
      await hostile.stop();
      if (timeouts + suspended === 0) throw new QosError('QOS_ERR_BENCH', 'the hostile clients made no calls while measured');
      r.rules.push(alone / HOSTILE_WINDOWS);
      r.beside.push(beside / HOSTILE_WINDOWS);
      r.ratio.push(beside / alone);
      r.timeouts.push(timeouts / (besideNs / 1e9));
      r.suspended.push(suspended / (besideNs / 1e9));
    }
    const js_decisions_per_s = Math.round(median(r.js));
    const tcl_decisions_per_s = Math.round(median(r.tcl));
    const rulesRtt = median(r.rulesRtt), jsRtt = median(r.jsRtt);
    const rulesRate = median(r.rules), beside = median(r.beside);
    const ratio = Math.round(medianF(r.ratio) * 1000) / 1000;
    return {
      js_decisions_per_s, tcl_decisions_per_s,
      rules_pair_rtt_ns_p50: rulesRtt, js_pair_rtt_ns_p50: jsRtt, js_added_ns_p50: jsRtt - rulesRtt,
      rules_decisions_per_s: Math.round(rulesRate),
      js_to_rules_ratio: Math.round((js_decisions_per_s / rulesRate) * 1000) / 1000, rules_decisions_per_s_beside_hostile_script: Math.round(beside), hostile_ratio: ratio,
      hostile_timeouts_per_s: median(r.timeouts),
      hostile_suspended_per_s: median(r.suspended),
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

/** Two connections sending SendTo requests, each of which overruns its deadline, one after
 * another but no more often than one per deadline (10 ms) each, so that their own load is the
 * same whether the script runs or is suspended (its calls then answered at once by the
 * rules), until paused or stopped. */
class Hammer {
  private paused = false;
  private stopped = false;
  private wake: (() => void)[] = [];
  private idle: (() => void)[] = [];
  private busy = 0;
  private readonly done: Promise<void>;
  constructor(d: DaemonChild) {
    this.done = Promise.all([0, 1].map(async (k) => {
      const c = new LineClient(d.socket);
      for (let fd = 3; !this.stopped; fd++) {
        if (this.paused) {
          await new Promise<void>((r) => this.wake.push(r));
          continue;
        }
        this.busy++;
        const t0 = Date.now();
        c.sock.write(`SendTo 1 0 hostile-${k} ${fd} {2 192.0.2.1 53}\n`);
        const reply = await c.next();
        if (--this.busy === 0) for (const r of this.idle.splice(0)) r();
        if (reply === null) break;
        const left = t0 + 10 - Date.now();
        if (left > 0) await new Promise((r) => setTimeout(r, left));
      }
      c.sock.destroy();
    })).then(() => undefined);
  }

  /** Resolves once no request of ours is in flight. */
  async pause(): Promise<void> {
    this.paused = true;
    if (this.busy) await new Promise<void>((r) => this.idle.push(r));
  }

  resume(): void {
    this.paused = false;
    for (const r of this.wake.splice(0)) r();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.resume();
    await this.done;
  }
}
