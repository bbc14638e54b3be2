/* The dashboard's Flows and Decisions pages in a real browser (Debian's chromium through
 * puppeteer-core) against a real daemon: a curl run under `qos run` appears in the Flows page
 * by the event stream, with its rule and decision; its program's view lists its flows and
 * decisions; the Decisions page follows, pauses and resumes; and `chromium --dump-dom` of the
 * URL `qos dashboard` prints has the live flow in its DOM. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { QOS } from './harness.js';
import { dashboardUrl, NARROW, startDashboard, WIDE } from './dashboard-browser.js';
import { requireChromium, requireRoot, requireTools } from '../prerequisites.js';
import { runSync } from '../exec.js';

const POLICY = `rules:
  - { name: curl-web, match: { exe: "*/curl", event: connect }, action: { dscp: AF41 } }
`;

/** A TCP server on loopback that accepts and never answers: a curl to it stays connected
 * (its flow open) until the test lets it go. */
async function holdingServer(): Promise<{ port: number; release(): void; close(): Promise<void> }> {
  const held = new Set<Socket>();
  const srv = createServer((s) => { held.add(s); s.on('close', () => held.delete(s)); s.resume(); });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  return {
    port,
    release() { for (const s of held) s.destroy(); },
    close: () => new Promise<void>((r) => { for (const s of held) s.destroy(); srv.close(() => r()); }),
  };
}

// the page's functions run in the browser, where there is a document
declare const document: { querySelector(s: string): { textContent: string | null; classList: { contains(c: string): boolean } } | null; querySelectorAll(s: string): Iterable<{ textContent: string | null }> };

/** curl under `qos run` (which runs it as its child): its pid once it runs, and its end. */
async function curlUnderAgent(socket: string, port: number): Promise<{ pid: number; done: Promise<number | null> }> {
  // the agent waits up to 5 s for the daemon: a loaded machine must not make curl go unmarked
  const p = spawn(process.execPath, [QOS, 'run', '--socket', socket, '--timeout-ms', '5000', '--', 'curl', '-s', '-o', '/dev/null', '--max-time', '120', `http://127.0.0.1:${port}/`], { stdio: 'ignore' });
  const done = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  for (let i = 0; ; i++) {
    let kids = '';
    try { kids = readFileSync(`/proc/${p.pid}/task/${p.pid}/children`, 'utf8').trim(); } catch { /* not yet, or gone */ }
    if (kids) {
      const pid = Number(kids.split(' ')[0]);
      // the child is curl once it has exec'd
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'curl') return { pid, done };
    }
    assert.ok(i < 3000, 'qos run started curl');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a curl under qos run appears in the Flows page with its rule and decision, by the event stream; its program view; the Decisions page follows and pauses', async (t) => {
  requireRoot('the daemon runs as root');
  requireTools('curl');
  requireChromium();
  const d = await startDashboard({ policy: POLICY });
  const srv = await holdingServer();
  try {
    const { page, errors } = await d.openPage('flows', WIDE);
    // the table is drawn from GET /v1/flows once; after that only events change it
    const started = Date.now();
    const curl = await curlUnderAgent(d.socket, srv.port);
    const row = `table[data-table="flows"] tr[data-key^="${curl.pid}:"]`;
    await page.waitForSelector(row, { timeout: 60_000 });
    t.diagnostic(`the curl's row appeared ${Date.now() - started} ms after curl was started (qos bench dashboard measures this lag)`);
    const cells = await page.$$eval(`${row} td`, (tds) => tds.map((td) => td.textContent ?? ''));
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent?.includes('dscp AF41'), { timeout: 60_000 }, row);
    const text = await page.$eval(row, (tr) => tr.textContent ?? '');
    assert.match(cells[0]!, /\/curl$/, 'the program');
    assert.equal(cells[1], String(curl.pid), 'the pid');
    assert.equal(cells[2], 'root', 'the user');
    assert.match(text, /curl-web/, 'the rule');
    assert.match(text, /dscp AF41/, 'the decision');
    assert.match(text, new RegExp(`127\\.0\\.0\\.1:${srv.port}`), 'the remote address');
    assert.match(text, /connect/, 'the event');
    await d.screenshot(page, 'flows');
    await page.setViewport(NARROW);
    await d.screenshot(page, 'flows-narrow');
    await page.setViewport(WIDE);

    // the program's view: its flows and its decisions
    await page.click(`${row} td a`);
    await page.waitForSelector('section[data-page="flows"][data-ready="1"] table[data-table="program-decisions"] tbody tr', { timeout: 60_000 });
    const decisions = await page.$$eval('table[data-table="program-decisions"] tbody tr', (trs) => trs.map((tr) => tr.textContent ?? ''));
    assert.ok(decisions.some((r) => r.includes('connect') && r.includes('curl-web') && r.includes('dscp AF41')), decisions.join('\n'));
    assert.ok(await page.$(row), 'the curl is among its program\'s flows');
    await d.screenshot(page, 'flows-program');

    // closed: the row stays, marked closed
    srv.release();
    await curl.done;
    await page.waitForFunction((sel) => document.querySelector(sel)?.classList.contains('closed'), { timeout: 60_000 }, row);
    assert.deepEqual(errors, []);
    await page.close();

    // the Decisions page: live, paused (what comes is counted, not shown), resumed
    const dp = await d.openPage('decisions', WIDE);
    const rows = () => dp.page.$$eval('table[data-table="decisions"] tbody tr', (trs) => trs.map((tr) => tr.textContent ?? ''));
    const second = await curlUnderAgent(d.socket, srv.port);
    await dp.page.waitForFunction((pid) => [...document.querySelectorAll('table[data-table="decisions"] tbody tr')].some((tr) => tr.textContent?.includes(String(pid)) && tr.textContent.includes('connect')), { timeout: 60_000 }, second.pid);
    srv.release();
    await second.done;
    await dp.page.click('button[data-action="pause"]');
    const before = (await rows()).length;
    const third = await curlUnderAgent(d.socket, srv.port);
    await dp.page.waitForFunction(() => /paused: [1-9]\d* new/.test(document.querySelector('section[data-page="decisions"] .toolbar [role="status"]')?.textContent ?? ''), { timeout: 60_000 });
    assert.equal((await rows()).length, before, 'nothing is added while paused');
    assert.ok(!(await rows()).some((r) => r.includes(String(third.pid))));
    await dp.page.click('button[data-action="pause"]');
    await dp.page.waitForFunction((pid) => [...document.querySelectorAll('table[data-table="decisions"] tbody tr')].some((tr) => tr.textContent?.includes(String(pid))), { timeout: 60_000 }, third.pid);
    // the filter
    await dp.page.type('section[data-page="decisions"] input[type="search"]', `${third.pid}`);
    await dp.page.waitForFunction((pid) => { const trs = [...document.querySelectorAll('table[data-table="decisions"] tbody tr')]; return trs.length > 0 && trs.every((tr) => tr.textContent?.includes(String(pid))); }, { timeout: 60_000 }, third.pid);
    await d.screenshot(dp.page, 'decisions');
    srv.release();
    await third.done;
    assert.deepEqual(dp.errors, []);
  } finally {
    await srv.close();
    await d.close();
  }
});

test('chromium --dump-dom of the URL qos dashboard prints shows the flows table with the live flow in its DOM', async () => {
  requireRoot('the daemon runs as root');
  requireTools('curl');
  const browser = requireChromium();
  const d = await startDashboard({ policy: POLICY });
  const srv = await holdingServer();
  try {
    const curl = await curlUnderAgent(d.socket, srv.port);
    // the daemon knows the flow (and its decision) before the browser is opened
    for (let i = 0; ; i++) {
      const flows = JSON.parse(runSync([process.execPath, QOS, 'flows', '--admin', d.admin, '--json']).stdout) as { pid: number; rule: string | null }[];
      if (flows.some((f) => f.pid === curl.pid && f.rule === 'curl-web')) break;
      assert.ok(i < 600, 'the daemon has the curl\'s flow');
      await new Promise((r) => setTimeout(r, 100));
    }
    const { url } = dashboardUrl(d.admin);
    const dom = runSync([browser, '--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage', '--dump-dom', '--virtual-time-budget=5000', url], { timeoutMs: 120_000, pkg: 'chromium' }).stdout;
    assert.match(dom, /<table data-table="flows">/, 'the flows table');
    const row = new RegExp(`<tr data-key="${curl.pid}:\\d+"[^>]*>(.*?)</tr>`).exec(dom);
    assert.ok(row, `the curl's row (pid ${curl.pid}) is in the DOM`);
    assert.match(row[1]!, /curl-web/);
    assert.match(row[1]!, /dscp AF41/);
    srv.release();
    await curl.done;
  } finally {
    await srv.close();
    await d.close();
  }
});
