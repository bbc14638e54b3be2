/* The dashboard's Flows page explains a flow on a click (Debian's chromium through
 * puppeteer-core, a real daemon): a curl under `qos run` is clicked, and the panel shows what
 * `qos explain --pid P --fd F` says of it, field by field: the path that decided and why, the
 * rule with its line, the rule before it with the condition that did not match, the
 * application's own TOS, the kernel's mark now (checked against ss), the kernel rule and the
 * traffic-control flow. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QOS } from './harness.js';
import { curlUnderAgent, holdingServer, NARROW, startDashboard, WIDE } from './dashboard-browser.js';
import { requireChromium, requireRoot, requireTools } from '../prerequisites.js';
import { runSync } from '../exec.js';
import { socketsOf } from '../kernel/sockets.js';
import type { ExplainReport } from '../explain/types.js';

// the page's functions run in the browser, where there is a document
declare const document: { querySelector(s: string): { textContent: string | null } | null };

const POLICY = `rules:
  - { name: zoom, match: { exe: "*/zoom" }, action: { dscp: EF } }
  - { name: curl-web, match: { exe: "*/curl", event: connect }, action: { dscp: AF41 } }
`;

test('a click on a curl\'s flow shows why it has its mark: path, rule, the rule that did not match and why, own TOS, the kernel\'s mark now, nftables, traffic control', async () => {
  requireRoot('the daemon runs as root');
  requireTools('curl', 'nsenter', 'ss');
  requireChromium();
  const d = await startDashboard({ policy: POLICY });
  const srv = await holdingServer();
  try {
    const { page, errors } = await d.openPage('flows', WIDE);
    const curl = await curlUnderAgent(d.socket, srv.port);
    const row = `table[data-table="flows"] tr[data-key^="${curl.pid}:"]`;
    await page.waitForFunction((sel) => (document.querySelector(sel)?.textContent ?? '').includes('dscp AF41'), { timeout: 60_000 }, row);
    const fd = Number((await page.$eval(row, (tr) => (tr as unknown as { dataset: { key: string } }).dataset.key)).split(':')[1]);
    // the PID cell: the program's name is a link to its view
    await page.click(`${row} td:nth-child(2)`);
    await page.waitForSelector('section[data-explain][data-state="ready"]', { timeout: 60_000 });
    const fields = Object.fromEntries(await page.$$eval('section[data-explain] dd[data-field]', (dds) => dds.map((dd) => [(dd as unknown as { dataset: { field: string } }).dataset.field, dd.textContent ?? ''])));
    const rules = await page.$$eval('section[data-explain] ol[data-field="rules"] li', (lis) => lis.map((li) => [(li as unknown as { dataset: { result: string } }).dataset.result, li.textContent ?? '']));
    const title = await page.$eval('section[data-explain] h2', (e) => e.textContent ?? '');

    assert.equal(title, `Why this mark: /usr/bin/curl (pid ${curl.pid}, fd ${fd} to 127.0.0.1:${srv.port})`);
    assert.equal(fields.path, 'agent (the process has the agent loaded: it decides, from this rule)');
    assert.equal(fields.rule, `rule curl-web (${d.daemon.policyFile}:3): DSCP AF41`);
    assert.deepEqual(rules, [
      ['failed', 'zoom (line 2): did not match because exe */zoom did not match /usr/bin/curl'],
      ['matched', 'curl-web (line 3): matched'],
    ]);
    assert.equal(fields['own-tos'], 'the application set no TOS of its own (as far as the agent or the eBPF programs saw)');
    // the kernel's mark, read here too
    const k = (await socketsOf(curl.pid)).find((s) => s.fd === fd)!;
    assert.equal(k.tos, 34 << 2);
    assert.match(fields['kernel-mark']!, new RegExp(`^TOS 0x88 \\(AF41\\), priority ${k.priority} \\(ss, fd ${fd} 127\\.0\\.0\\.1:\\d+ -> 127\\.0\\.0\\.1:${srv.port}\\)$`));
    assert.equal(fields.tc, 'none (the daemon runs without traffic control (--tc off))');
    assert.match(fields['kernel-rule']!, /^unknown \((connection tracking has no entry for it|the daemon has no nftables table installed|cannot read .*)\)$/, 'the test daemon runs with --kernel off');
    // the CLI's answer is the same one
    const j = JSON.parse(runSync([process.execPath, QOS, 'explain', '--admin', d.admin, '--pid', String(curl.pid), '--fd', String(fd), '--json']).stdout) as ExplainReport;
    assert.equal(fields.path, `${j.path.path} (${j.path.why})`);
    assert.deepEqual([j.decided_by, j.line, j.socket?.tos], ['curl-web', 3, 34 << 2]);
    await d.screenshot(page, 'flows-explain');
    await page.setViewport(NARROW);
    await d.screenshot(page, 'flows-explain-narrow');
    // closed again
    await page.click('section[data-explain] button[data-action="close-explain"]');
    assert.equal(await page.$eval('section[data-explain]', (e) => (e as unknown as { hidden: boolean }).hidden), true);
    await srv.release();
    await curl.done;
    assert.deepEqual(errors, []);
  } finally {
    await srv.close();
    await d.close();
  }
});
