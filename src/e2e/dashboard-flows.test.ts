/* The dashboard's Flows and Decisions pages in a real browser (Debian's chromium through
 * puppeteer-core) against a real daemon: a curl run under `qos run` appears in the Flows page
 * by the event stream, with its rule and decision; its program's view lists its flows and
 * decisions; the Decisions page follows, pauses and resumes; and `chromium --dump-dom` of the
 * URL `qos dashboard` prints has the live flow in its DOM. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QOS } from './harness.js';
import { curlUnderAgent, dashboardUrl, holdingServer, NARROW, startDashboard, WIDE } from './dashboard-browser.js';
import { requireChromium, requireRoot, requireTools } from '../prerequisites.js';
import { runSync } from '../exec.js';

// the page's functions run in the browser, where there is a document
declare const document: { querySelector(s: string): { textContent: string | null; classList: { contains(c: string): boolean } } | null; querySelectorAll(s: string): Iterable<{ textContent: string | null }> };

const POLICY = `rules:
  - { name: curl-web, match: { exe: "*/curl", event: connect }, action: { dscp: AF41 } }
`;

test('a curl under qos run appears in the Flows page with its rule and decision, by the event stream; its program view; the Decisions page follows and pauses', async (t) => {
  requireRoot('the daemon runs as root');
  requireTools('curl');
  requireChromium();
  const d = await startDashboard({ policy: POLICY });
  const srv = await holdingServer();
  try {
    const { page, errors } = await d.openPage('flows', WIDE);
    // the table is drawn from GET /v1/flows once; after that only events change it: the row
    // must come by the event stream, not by the page asking again
    const asked: string[] = [];
    page.on('request', (r) => { if (r.url().includes('/api/v1/')) asked.push(r.url()); });
    const started = Date.now();
    const curl = await curlUnderAgent(d.socket, srv.port);
    const row = `table[data-table="flows"] tr[data-key^="${curl.pid}:"]`;
    await page.waitForSelector(row, { timeout: 60_000 });
    t.diagnostic(`the curl's row appeared ${Date.now() - started} ms after curl was started (qos bench dashboard measures this lag)`);
    assert.deepEqual(asked, [], 'the row came by the event stream');
    const cells = await page.$$eval(`${row} td`, (tds) => tds.map((td) => td.textContent ?? ''));
    // the flow's decision and the call's name come by two events (decided, decision)
    await page.waitForFunction((sel) => { const t = document.querySelector(sel)?.textContent ?? ''; return t.includes('dscp AF41') && t.includes('connect'); }, { timeout: 60_000 }, row);
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
    await srv.release();
    await curl.done;
    await page.waitForFunction((sel) => document.querySelector(sel)?.classList.contains('closed'), { timeout: 60_000 }, row);
    assert.deepEqual(errors, []);
    await page.close();

    // the Decisions page: live, paused (what comes is counted, not shown), resumed
    const dp = await d.openPage('decisions', WIDE);
    const rows = () => dp.page.$$eval('table[data-table="decisions"] tbody tr', (trs) => trs.map((tr) => tr.textContent ?? ''));
    const second = await curlUnderAgent(d.socket, srv.port);
    await dp.page.waitForFunction((pid) => [...document.querySelectorAll('table[data-table="decisions"] tbody tr')].some((tr) => tr.textContent?.includes(String(pid)) && tr.textContent.includes('connect')), { timeout: 60_000 }, second.pid);
    await srv.release();
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
    await srv.release();
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
    await srv.release();
    await curl.done;
  } finally {
    await srv.close();
    await d.close();
  }
});
