/* The dashboard in a real browser, for tests and `qos bench dashboard`: a daemon with --http
 * (DaemonChild), Debian's chromium driven by puppeteer-core (which downloads no browser), a
 * login with the URL `qos dashboard` prints, and one tab per page opened. Everything a page
 * reports as an error (console errors, uncaught exceptions, failed or refused requests) is
 * collected, so a test can require there be none. Screenshots go to
 * test-artifacts/dashboard/ in the repository (or $QOSD_ARTIFACTS), kept by CI. */

import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { DaemonChild, QOS_CLI } from '../daemon/child.js';
import { QosError } from '../errors.js';
import { runSync, start, whereIs } from '../exec.js';
import { requireChromium } from '../prerequisites.js';
import { bridgeInto, type Bridge } from './ns-bridge.js';

export const ARTIFACTS = process.env.QOSD_ARTIFACTS ?? resolve(fileURLToPath(import.meta.url), '../../../test-artifacts/dashboard');
export const WIDE = { width: 1280, height: 800 };
export const NARROW = { width: 390, height: 844 };

export interface DashboardOptions {
  /** the policy file's text (null: the built-in policy) */
  policy?: string | null;
  /** more daemon options; the default ones keep the machine's nftables and qdiscs alone */
  daemonArgs?: string[];
  /** the daemon's argv wrapper, e.g. ['ip', 'netns', 'exec', NS] */
  wrap?: string[];
  /** run the daemon in this network namespace (its nftables table acts there); the browser,
   * here, reaches its dashboard through a bridge (ns-bridge.ts) */
  netns?: string;
}

export interface OpenPage {
  page: Page;
  /** what went wrong in the page so far: console errors, uncaught exceptions, failed requests */
  errors: string[];
}

export interface Dashboard {
  url: string;
  base: string;
  token: string;
  daemon: DaemonChild;
  admin: string;
  socket: string;
  dir: string;
  browser: Browser;
  /** a new tab logged in and showing #/<id> (with ?query if given), its data-ready awaited */
  openPage(id: string, size?: { width: number; height: number }, o?: { query?: string; ready?: boolean }): Promise<OpenPage>;
  screenshot(page: Page, name: string): Promise<string>;
  close(): Promise<void>;
}

/** The URL (with its token) `qos dashboard --json` prints for the daemon at admin. */
export function dashboardUrl(admin: string): { url: string; token: string } {
  return JSON.parse(runSync([process.execPath, QOS_CLI, 'dashboard', '--admin', admin, '--json'], { name: 'qos dashboard' }).stdout) as { url: string; token: string };
}

export async function launchBrowser(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: whereIs(requireChromium())!,
    headless: true,
    // --no-sandbox: the sandbox refuses to run as root, as the tests do
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--hide-scrollbars'],
  });
}

/** Collects what a page reports as going wrong. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(`page error: ${(e as Error).message ?? String(e)}`));
  page.on('requestfailed', (r) => {
    // a stream the page closes on leaving (EventSource) is aborted by the browser, not failed
    if (r.failure()?.errorText === 'net::ERR_ABORTED') return;
    errors.push(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText ?? ''}`);
  });
  page.on('response', (r) => { if (r.status() >= 400) errors.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`); });
  return errors;
}

export async function startDashboard(o: DashboardOptions = {}): Promise<Dashboard> {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-dash-'));
  const daemon = new DaemonChild(dir, o.policy === undefined ? 'rules: []\n' : o.policy, [
    '--kernel', 'off', '--tc', 'off', '--nice', 'keep', '--http', '127.0.0.1:0', ...(o.daemonArgs ?? []),
  ], o.netns ? ['ip', 'netns', 'exec', o.netns, ...(o.wrap ?? [])] : o.wrap ?? []);
  let browser: Browser | undefined;
  let bridge: Bridge | undefined;
  try {
    await daemon.start();
    let { url, token } = dashboardUrl(daemon.admin);
    if (o.netns) {
      bridge = await bridgeInto(o.netns, Number(new URL(url).port), dir);
      url = url.replace(/^http:\/\/127\.0\.0\.1:\d+/, `http://127.0.0.1:${bridge.port}`);
    }
    const base = url.replace(/#.*/, '');
    browser = await launchBrowser();
    // log in once: the session cookie and the CSRF token (localStorage) are the browser's for every tab
    const first = await browser.newPage();
    await first.goto(url);
    await first.waitForSelector('#app header nav', { timeout: 20_000 });
    await first.close();
    const b = browser;
    mkdirSync(ARTIFACTS, { recursive: true });
    return {
      url, base, token, daemon, admin: daemon.admin, socket: daemon.socket, dir, browser: b,
      async openPage(id, size = WIDE, po = {}) {
        const page = await b.newPage();
        const errors = watchErrors(page);
        await page.setViewport(size);
        await page.goto(`${base}#/${id}${po.query ? `?${po.query}` : ''}`);
        await page.waitForSelector(`section[data-page="${id}"]${po.ready === false ? '' : '[data-ready="1"]'}`, { timeout: 20_000 });
        return { page, errors };
      },
      async screenshot(page, name) {
        const file = join(ARTIFACTS, `${name}.png`);
        mkdirSync(dirname(file), { recursive: true });
        await page.screenshot({ path: file as `${string}.png`, fullPage: false });
        return file;
      },
      async close() {
        await b.close().catch(() => undefined);
        await bridge?.close().catch(() => undefined);
        await daemon.stop().catch(() => undefined);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await browser?.close().catch(() => undefined);
    await bridge?.close().catch(() => undefined);
    await daemon.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** A TCP server on loopback that accepts and never answers: a curl to it stays connected
 * (its flow open) until the test lets it go. release() waits until a connection has been
 * accepted here (the kernel may hold it in the listen queue while this process has not run
 * its event loop since: a test that only ran blocking calls after the connect) and ends every
 * one held. */
export async function holdingServer(): Promise<{ port: number; release(): Promise<void>; close(): Promise<void> }> {
  const held = new Set<Socket>();
  const srv = createServer((s) => { held.add(s); s.on('close', () => held.delete(s)); s.resume(); });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  return {
    port,
    async release() {
      for (let i = 0; held.size === 0; i++) {
        if (i >= 3000) throw new QosError('QOS_ERR_ENVIRONMENT', 'no connection came to the holding server within a minute');
        await new Promise((r) => setTimeout(r, 20));
      }
      for (const s of held) s.destroy();
    },
    close: () => new Promise<void>((r) => { for (const s of held) s.destroy(); srv.close(() => r()); }),
  };
}

/** curl under `qos run` (which runs it as its child): its pid once it runs, and its end. */
export async function curlUnderAgent(socket: string, port: number): Promise<{ pid: number; done: Promise<number | null> }> {
  // the agent waits up to 5 s for the daemon: a loaded machine must not make curl go unmarked
  const p = start([process.execPath, QOS_CLI, 'run', '--socket', socket, '--timeout-ms', '5000', '--', 'curl', '-s', '-o', '/dev/null', '--max-time', '120', `http://127.0.0.1:${port}/`], { name: 'curl under qos run', stdio: ['ignore', 'ignore', 'ignore'] }).proc;
  const done = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  for (let i = 0; ; i++) {
    let kids = '';
    try { kids = readFileSync(`/proc/${p.pid}/task/${p.pid}/children`, 'utf8').trim(); } catch { /* not yet, or gone */ }
    if (kids) {
      const pid = Number(kids.split(' ')[0]);
      // the child is curl once it has exec'd
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'curl') return { pid, done };
    }
    if (i >= 3000) throw new QosError('QOS_ERR_ENVIRONMENT', 'qos run did not start curl within a minute');
    await new Promise((r) => setTimeout(r, 20));
  }
}
