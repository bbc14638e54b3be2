/* `qos bench agent`, issue 18: the agent's cached path against the least an LD_PRELOAD QoS shim
 * can do (agent/bench/tos_shim.c: setsockopt(IP_TOS) in connect(), nothing else). Time ratios of
 * connect+close and of curl over alternating pairs, the system calls a cached connect adds,
 * counted with strace, and the daemon's CPU per cached connect, from /proc. */

import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { QosError } from '../errors.js';
import { run, runSync } from '../exec.js';
import { callJson, metricOf } from '../daemon/admin-client.js';
import type { DaemonChild } from '../daemon/child.js';
import { statTicks } from '../script/cpu.js';
import { medianF, runJson } from './helpers.js';

export const SHIM_LIBRARY = 'libtosshim.so';

export interface CachedPathOptions {
  /** alternating runs of each configuration; figures are medians over pairs */
  pairs: number;
  /** connects per connect_close run */
  connects: number;
  /** files curl fetches in one process */
  curlFiles: number;
  /** connects of the smaller strace run (the larger has twice as many) */
  straceConnects: number;
  /** cached connects while the daemon's CPU is read */
  cpuConnects: number;
}

/** What the measurements need of the benchmark around them. */
export interface CachedPathSetup {
  /** the bench helpers' directory (agent/build/bench) */
  binDir: string;
  /** a connect_close sink's port, and the file server's */
  port: number;
  httpPort: number;
  daemon: DaemonChild;
  /** the environment that preloads the agent */
  withAgent: NodeJS.ProcessEnv;
  say: (m: string) => void;
}

export interface CachedPathResult {
  /** connect+close p50, agent (cached decision) / shim: median over pairs, and min-max */
  shim_ratio: number;
  shim_ratio_range: [number, number];
  /** connect+close p50, shim / nothing */
  bare_ratio: number;
  bare_ratio_range: [number, number];
  /** curl fetching curlFiles files (a connection each), agent / shim */
  shim_ratio_curl: number;
  shim_ratio_curl_range: [number, number];
  curl_ms_with: number;
  curl_ms_shim: number;
  /** strace-counted system calls per connect, agent minus nothing; by name those >= 0.05 */
  extra_syscalls_per_cached_connect: number;
  extra_syscalls_by_name: Record<string, number>;
  daemon_cpu_us_per_cached_connect: number;
  /** notifications the agent dropped during that run because its ring was full (the daemon
   * fell behind): the flows the daemon never heard of */
  notifications_shed: number;
}

/** The policy rule that marks curl's fetches from the file server, as connect_close's are. */
export function curlRule(httpPort: number) {
  return { name: 'bench-curl', match: { exe: '*/curl', remote_port: httpPort }, action: { dscp: 'AF21' } };
}

/** A local HTTP server of small files /f1, /f2, ...; each response closes its connection, so
 * that every file costs curl a connect. */
export function startFileServer(): Promise<{ port: number; server: Server }> {
  const body = Buffer.alloc(400, 'qosd bench file\n');
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length, connection: 'close' });
    res.end(body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as { port: number }).port, server }));
  });
}

/** connect_close runs n + n/10 connects (the first tenth warms up). */
const connectsIn = (n: number) => n + Math.trunc(n / 10);
const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** Median, min and max, rounded for a report. */
function spread(xs: number[]): { median: number; range: [number, number] } {
  return { median: round3(medianF(xs)), range: [round3(Math.min(...xs)), round3(Math.max(...xs))] };
}

/** System calls by name from `strace -c` output. */
export function parseStraceCounts(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  // % time, seconds, usecs/call, calls, [errors], syscall
  for (const m of text.matchAll(/^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/gm)) {
    if (m[2] !== 'total') counts.set(m[2]!, Number(m[1]));
  }
  return counts;
}

export async function benchCachedPath(o: CachedPathOptions, s: CachedPathSetup): Promise<CachedPathResult> {
  const bin = (n: string) => join(s.binDir, n);
  const envs = {
    none: process.env,
    shim: { ...process.env, LD_PRELOAD: bin(SHIM_LIBRARY) },
    agent: s.withAgent,
  };
  type Config = keyof typeof envs;
  const configs: Config[] = ['none', 'shim', 'agent'];
  const connectArgv = (n: number) => [bin('connect_close'), 'run', String(s.port), String(n)];

  // connect+close: every configuration once per pair, in rotating order
  const p50 = { none: [] as number[], shim: [] as number[], agent: [] as number[] };
  for (let p = 0; p < o.pairs; p++) {
    s.say(`agent against the shim: connect+close ${p + 1}/${o.pairs}`);
    for (let i = 0; i < configs.length; i++) {
      const k = configs[(i + p) % configs.length]!;
      p50[k].push(runJson<{ ns_p50: number }>(connectArgv(o.connects), envs[k]).ns_p50);
    }
  }
  const shim = spread(p50.agent.map((x, i) => x / p50.shim[i]!));
  const bare = spread(p50.shim.map((x, i) => x / p50.none[i]!));

  // curl: one process fetching every file, agent and shim alternating which goes first
  const curlArgv = ['curl', '-s', '--fail'];
  for (let f = 1; f <= o.curlFiles; f++) curlArgv.push('-o', '/dev/null', `http://127.0.0.1:${s.httpPort}/f${f}`);
  const curlMs = { agent: [] as number[], shim: [] as number[] };
  for (let p = 0; p < o.pairs; p++) {
    s.say(`agent against the shim: curl ${p + 1}/${o.pairs}`);
    for (const k of p % 2 ? (['shim', 'agent'] as const) : (['agent', 'shim'] as const)) {
      const t0 = performance.now();
      await run(curlArgv, { env: envs[k], timeoutMs: 300_000, code: 'QOS_ERR_BENCH', pkg: 'curl' });
      curlMs[k].push(performance.now() - t0);
    }
  }
  const curl = spread(curlMs.agent.map((x, i) => x / curlMs.shim[i]!));
  const medianMs = (xs: number[]) => spread(xs).median;

  // system calls, counted: two run lengths, so that what a process does once (loading the
  // agent, its first question to the daemon) cancels out
  s.say('system calls per cached connect (strace)');
  const straceOut = join(s.daemon.dir, 'strace.txt');
  const agentVars = Object.entries(s.withAgent).filter(([k, v]) => process.env[k] !== v).flatMap(([k, v]) => ['-E', `${k}=${v}`]);
  const count = (vars: string[], n: number) => {
    runSync(['strace', '-f', '-c', '-o', straceOut, ...vars, ...connectArgv(n)], { timeoutMs: 300_000, code: 'QOS_ERR_BENCH', pkg: 'strace' });
    return parseStraceCounts(readFileSync(straceOut, 'utf8'));
  };
  const [a, b] = [o.straceConnects, 2 * o.straceConnects];
  const withA = count(agentVars, a), withB = count(agentVars, b), noneA = count([], a), noneB = count([], b);
  const names = new Set([...withA.keys(), ...withB.keys(), ...noneA.keys(), ...noneB.keys()]);
  const c = (m: Map<string, number>, k: string) => m.get(k) ?? 0;
  let extra = 0;
  const byName: Record<string, number> = {};
  for (const k of [...names].sort()) {
    const perConnect = (c(withB, k) - c(withA, k) - (c(noneB, k) - c(noneA, k))) / (connectsIn(b) - connectsIn(a));
    extra += perConnect;
    if (perConnect >= 0.05) byName[k] = Math.round(perConnect * 100) / 100;
  }

  s.say(`daemon CPU over ${o.cpuConnects} cached connects`);
  const shed0 = await metricOf(s.daemon.admin, 'qosd_agent_notifications_shed_total');
  const cpuUs = await daemonCpuPerConnect(s, connectArgv(o.cpuConnects), connectsIn(o.cpuConnects));
  const shed = (await metricOf(s.daemon.admin, 'qosd_agent_notifications_shed_total')) - shed0;

  return {
    shim_ratio: shim.median, shim_ratio_range: shim.range,
    bare_ratio: bare.median, bare_ratio_range: bare.range,
    shim_ratio_curl: curl.median, shim_ratio_curl_range: curl.range,
    curl_ms_with: medianMs(curlMs.agent), curl_ms_shim: medianMs(curlMs.shim), // rounded to µs
    extra_syscalls_per_cached_connect: Math.round(extra * 100) / 100,
    extra_syscalls_by_name: byName,
    daemon_cpu_us_per_cached_connect: Math.round(cpuUs * 10) / 10,
    notifications_shed: shed,
  };
}

/** The daemon's user + system CPU (all its threads, from /proc/PID/stat) for a run of connects
 * with the agent, per connect. Notifications are handled after the run has ended, so the CPU is
 * read once the daemon has gone idle (no tick for 300 ms). */
async function daemonCpuPerConnect(s: CachedPathSetup, argv: string[], connects: number): Promise<number> {
  const pid = s.daemon.proc.pid!;
  const ticks = () => statTicks(readFileSync(`/proc/${pid}/stat`, 'latin1'));
  const idle = async () => {
    for (let t = ticks(), deadline = Date.now() + 60_000; ; ) {
      await sleep(300);
      const u = ticks();
      if (u === t) return u;
      if (Date.now() > deadline) throw new QosError('QOS_ERR_BENCH', 'the daemon did not go idle within a minute of the run');
      t = u;
    }
  };
  const decisions = async () => (await callJson<{ decisions_total: number }>(s.daemon.admin, 'GET', '/v1/status')).decisions_total;
  const usPerTick = 1e6 / Number(runSync(['getconf', 'CLK_TCK']).stdout.trim());
  const d0 = await decisions();
  const t0 = await idle();
  runSync(argv, { env: s.withAgent, timeoutMs: 300_000, code: 'QOS_ERR_BENCH' });
  const t1 = await idle();
  // the run's connects must have reached the daemon, or its CPU says nothing about them (a
  // few shed by a full ring - counted in notifications_shed - do not void the figure)
  const seen = (await decisions()) - d0;
  if (seen < connects * 0.9) throw new QosError('QOS_ERR_BENCH', `the daemon recorded ${seen} decisions for ${connects} cached connects: the agent did not reach it`);
  return ((t1 - t0) * usPerTick) / connects;
}
