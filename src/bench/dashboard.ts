/* `qos bench dashboard`: the web dashboard in a real browser (Debian's chromium through
 * puppeteer-core) against a real daemon.
 *
 * - sse_lag_ms: from the daemon's decision on a curl's connect (the decision's own time) to the
 *   curl's decided row in the Flows page's DOM (a MutationObserver in the page notes the time),
 *   for `samples` curls under `qos run` one after another; p50, p99, min, max. Both times are
 *   this machine's clock. The page draws at most every 100 ms, part of the figure.
 * - page_load_ms: a cold load (a new browser context: no cache) of the Flows page with a
 *   session, from the navigation's start to the table drawn from the daemon's data
 *   (data-ready), `loads` times; median, min, max.
 * - bundle_kb: the app's files in dist/web, gzip-compressed (level 6), in KiB; and raw.
 * - daemon_cpu_pct_idle_dashboard_open: the daemon's CPU (utime + stime) over idle windows of
 *   `idleS` seconds with the Flows page open (its event stream followed), alternating with
 *   windows without any page open, the reference: what the daemon costs idle anyway. */

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { call } from '../daemon/admin-client.js';
import { QosError } from '../errors.js';
import type { Target } from './agent.js';
import { medianF } from './helpers.js';
import { percentile } from '../demo/analyze.js';
import { cpuMs } from '../script/cpu.js';

export interface DashboardBenchOptions { samples: number; loads: number; idleS: number; rounds: number; progress?: (m: string) => void }

export interface DashboardBenchResult {
  sse_lag_ms_p50: number;
  sse_lag_ms_p99: number;
  sse_lag_ms_min: number;
  sse_lag_ms_max: number;
  page_load_ms: number;
  page_load_ms_min: number;
  page_load_ms_max: number;
  bundle_kb: number;
  bundle_raw_kb: number;
  daemon_cpu_pct_idle_dashboard_open: number;
  daemon_cpu_pct_idle_no_dashboard: number;
  daemon_cpu_pct_idle_rounds: { open: number; closed: number }[];
  targets: { sse_lag_ms_p99: Target; page_load_ms: Target; bundle_kb: Target; daemon_cpu_pct_idle_dashboard_open: Target };
  setup: { samples: number; loads: number; idle_s: number; rounds: number; cpus: number; node: string; chromium: string };
}

const WEB = resolve(fileURLToPath(import.meta.url), '../../web');
const POLICY = `rules:
  - { name: bench, match: { exe: "*/curl", event: connect }, action: { dscp: AF41 } }
`;

/** In the page (browser JavaScript): the time each curl's decided row first shows, by pid. */
const NOTE_ROWS = `window.seen = {};
new MutationObserver(() => {
  for (const tr of document.querySelectorAll('table[data-table="flows"] tbody tr[data-key]')) {
    const pid = tr.dataset.key.split(':')[0];
    if (window.seen[pid] === undefined && tr.textContent.includes('AF41')) window.seen[pid] = Date.now();
  }
}).observe(document.body, { childList: true, subtree: true });`;

/** In the page, before its scripts: the time since the navigation's start when it is ready. */
const NOTE_READY = `new MutationObserver((_m, obs) => {
  if (document.querySelector('section[data-page][data-ready="1"]')) { window.readyAt = performance.now(); obs.disconnect(); }
}).observe(document, { childList: true, subtree: true, attributes: true });`;

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => { const p = join(dir, f); return statSync(p).isDirectory() ? filesUnder(p) : [p]; });
}

const round1 = (x: number) => Math.round(x * 10) / 10;
const round3 = (x: number) => Math.round(x * 1000) / 1000;

export async function benchDashboard(o: DashboardBenchOptions): Promise<DashboardBenchResult> {
  const say = o.progress ?? (() => undefined);
  let files: string[];
  try { files = filesUnder(WEB); } catch { throw new QosError('QOS_ERR_BENCH', `the browser app is not built (${WEB}): npm run build`); }
  const raw = files.reduce((n, f) => n + statSync(f).size, 0);
  const gz = files.reduce((n, f) => n + gzipSync(readFileSync(f), { level: 6 }).length, 0);

  let harness: typeof import('../e2e/dashboard-browser.js');
  try { harness = await import('../e2e/dashboard-browser.js'); } catch (e) {
    throw new QosError('QOS_ERR_BENCH', `qos bench dashboard needs puppeteer-core (a development dependency: npm ci in the source tree) and chromium: ${(e as Error).message}`);
  }
  const d = await harness.startDashboard({ policy: POLICY });
  const srv = await harness.holdingServer();
  try {
    const chromium = await d.browser.version();
    // sse lag
    say(`sse lag: ${o.samples} curls under qos run`);
    const { page } = await d.openPage('flows');
    await page.evaluate(NOTE_ROWS);
    const seenAt: { pid: number; at: number }[] = [];
    for (let i = 0; i < o.samples; i++) {
      const curl = await harness.curlUnderAgent(d.socket, srv.port);
      let at: number | undefined;
      for (let k = 0; at === undefined; k++) {
        if (k > 3000) throw new QosError('QOS_ERR_BENCH', `curl ${curl.pid}'s row never appeared in the Flows page`);
        at = (await page.evaluate(`window.seen[${JSON.stringify(String(curl.pid))}]`)) as number | undefined;
        if (at === undefined) await new Promise((r) => setTimeout(r, 20));
      }
      seenAt.push({ pid: curl.pid, at });
      await srv.release();
      await curl.done;
    }
    const r = await call(d.admin, 'GET', '/v1/decisions?limit=10000');
    const decided = new Map<number, number>();
    for (const line of r.body.split('\n')) {
      if (!line.trim()) continue;
      const x = JSON.parse(line) as { pid: number; event: string; time: string };
      if (x.event === 'connect' && !decided.has(x.pid)) decided.set(x.pid, Date.parse(x.time));
    }
    const lags = seenAt.map((s) => {
      const t = decided.get(s.pid);
      if (t === undefined) throw new QosError('QOS_ERR_BENCH', `no connect decision for curl ${s.pid}`);
      return s.at - t;
    });
    await page.close();

    // cold page loads
    say(`page load: ${o.loads} cold loads`);
    const { login } = await import('../dashboard/test-client.js');
    const session = await login(d.base, d.token);
    const loads: number[] = [];
    for (let i = 0; i < o.loads; i++) {
      const ctx = await d.browser.createBrowserContext();
      const p = await ctx.newPage();
      await p.setViewport({ width: 1280, height: 800 });
      await ctx.setCookie({ name: 'qosd_session', value: session.cookie.split('=')[1]!, domain: new URL(d.base).hostname, path: '/', httpOnly: true, sameSite: 'Strict' });
      await p.evaluateOnNewDocument(`localStorage.setItem('qosd-csrf', ${JSON.stringify(session.csrf)});\n${NOTE_READY}`);
      await p.goto(`${d.base}#/flows`);
      await p.waitForSelector('section[data-page="flows"][data-ready="1"]', { timeout: 60_000 });
      loads.push((await p.evaluate('window.readyAt')) as number);
      await ctx.close();
    }

    // idle CPU: alternating windows with and without the Flows page open
    say(`idle CPU: ${o.rounds} rounds of ${o.idleS} s with and without the page open`);
    const pid = d.daemon.proc.pid!;
    const windowPct = async () => {
      const c0 = cpuMs(`/proc/${pid}/stat`)!, t0 = performance.now();
      await new Promise((r) => setTimeout(r, o.idleS * 1000));
      return ((cpuMs(`/proc/${pid}/stat`)! - c0) / (performance.now() - t0)) * 100;
    };
    const rounds: { open: number; closed: number }[] = [];
    for (let i = 0; i < o.rounds; i++) {
      const closed = await windowPct();
      const open = await d.openPage('flows');
      const pct = await windowPct();
      await open.page.close();
      rounds.push({ open: round3(pct), closed: round3(closed) });
    }

    const sorted = [...lags].sort((a, b) => a - b);
    const p99 = percentile(sorted, 99)!;
    const load = medianF(loads);
    const cpuOpen = medianF(rounds.map((x) => x.open));
    const bundle = gz / 1024;
    return {
      sse_lag_ms_p50: round1(percentile(sorted, 50)!), sse_lag_ms_p99: round1(p99), sse_lag_ms_min: round1(Math.min(...lags)), sse_lag_ms_max: round1(Math.max(...lags)),
      page_load_ms: round1(load), page_load_ms_min: round1(Math.min(...loads)), page_load_ms_max: round1(Math.max(...loads)),
      bundle_kb: round1(bundle), bundle_raw_kb: round1(raw / 1024),
      daemon_cpu_pct_idle_dashboard_open: round3(cpuOpen), daemon_cpu_pct_idle_no_dashboard: round3(medianF(rounds.map((x) => x.closed))),
      daemon_cpu_pct_idle_rounds: rounds,
      targets: {
        sse_lag_ms_p99: { value: round1(p99), limit: 1000, ok: p99 <= 1000 },
        page_load_ms: { value: round1(load), limit: 500, ok: load <= 500 },
        bundle_kb: { value: round1(bundle), limit: 300, ok: bundle <= 300 },
        daemon_cpu_pct_idle_dashboard_open: { value: round3(cpuOpen), limit: 1, ok: cpuOpen <= 1 },
      },
      setup: { samples: o.samples, loads: o.loads, idle_s: o.idleS, rounds: o.rounds, cpus: cpus().length, node: process.version, chromium },
    };
  } finally {
    await srv.close();
    await d.close();
  }
}
