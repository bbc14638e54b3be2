/* Issue 22's Policy page test, in headless chromium: the daemon's policy gives curl AF21, and a
 * curl under `qos run` sends its SYN so (tshark); the policy is edited in the page to EF,
 * applied after its diff, and the next curl's SYN carries EF. A syntax error typed in the page
 * is shown at the line and column `qos policy check` gives, Apply is disabled, a direct apply
 * is refused, and curl still gets EF; the first version, restored from the page, gives AF21
 * again. The built-in policy is shown read-only. No console error on the way; screenshots kept. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'puppeteer-core';
import { call } from '../daemon/admin-client.js';
import { requireChromium } from '../prerequisites.js';
import { startDashboard, type Dashboard } from './dashboard-browser.js';
import { AGENT_TIMEOUT_MS, QOS, requireE2e, sh, Testbed } from './harness.js';

const policy = (dscp: string) => `# curl's connections, by its executable
rules:
  - name: curl
    match: { exe: "*/curl", event: connect }
    action: { dscp: ${dscp} }
`;
/** line 4 opens a flow map it never closes: a syntax error the checker places */
const BROKEN = `# curl's connections, by its executable
rules:
  - name: curl
    match: { exe: "*/curl", event: connect
    action: { dscp: EF }
`;
const AF21 = 18, EF = 46;
const PORT = 8080;

let tb: Testbed;
let dash: Dashboard;

before(async () => {
  requireE2e('curl', 'python3');
  requireChromium();
  tb = new Testbed();
  tb.start(['python3', '-m', 'http.server', String(PORT), '--bind', '::'], tb.server);
  await tb.waitListening(PORT);
  dash = await startDashboard({ policy: policy('AF21') });
});

after(async () => {
  await dash?.close();
  tb?.cleanup();
});

/** The DSCP of the SYN a curl under the agent sends to the server (tcpdump, then tshark). */
async function curlSynDscp(): Promise<number> {
  const cap = await tb.capture(`tcp and dst port ${PORT}`);
  const r = tb.inClient([process.execPath, QOS, 'run', '--socket', dash.socket, '--timeout-ms', String(AGENT_TIMEOUT_MS), '--', 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${tb.serverIp}:${PORT}/`]);
  assert.equal(r.stdout, '200', r.stderr);
  const syns = (await cap.packets()).filter((p) => p.syn && !p.ack && p.dstPort === PORT);
  assert.equal(syns.length, 1, 'one SYN');
  return syns[0]!.dscp;
}

/** Replaces the editor's text by typing it: select all, then the keys. */
async function typeText(page: Page, text: string): Promise<void> {
  await page.click('[data-role="editor"]');
  await page.keyboard.down('Control');
  await page.keyboard.press('a');
  await page.keyboard.up('Control');
  await page.keyboard.press('Backspace');
  await page.keyboard.type(text);
}

test('the Policy page: edit AF21 to EF, see the diff, apply, and the next SYN is EF; a syntax error is shown where the checker puts it and cannot be applied', { timeout: 300_000 }, async () => {
  assert.equal(await curlSynDscp(), AF21, 'the policy at start gives curl AF21');

  const { page, errors } = await dash.openPage('policy', { width: 1280, height: 800 });
  await page.waitForSelector('[data-page="policy"][data-ready="1"]');
  assert.equal(await page.$eval('[data-role="editor"]', (e) => (e as unknown as { value: string }).value), policy('AF21'), 'the editor holds the running text');
  assert.equal(await page.$eval('[data-action="apply"]', (e) => (e as unknown as { disabled: boolean }).disabled), true, 'nothing to apply yet');

  // af21 → ef, typed; once checked (no problem), Apply is enabled
  await typeText(page, policy('EF'));
  await page.waitForSelector('[data-action="apply"]:not([disabled])');
  assert.equal(await page.$$eval('[data-role="problems"] li', (l) => l.length), 0);
  await dash.screenshot(page, 'policy-editing');

  await page.click('[data-action="apply"]');
  await page.waitForSelector('[data-action="confirm"]', { visible: true });
  const changed = await page.$$eval('table.policy-diff tr.del td.line, table.policy-diff tr.add td.line', (cells) => cells.map((c) => c.textContent));
  assert.deepEqual(changed, ['−     action: { dscp: AF21 }', '+     action: { dscp: EF }'], 'the diff: the one changed line, removed then added');
  await dash.screenshot(page, 'policy-diff');
  await page.click('[data-action="confirm"]');
  await page.waitForSelector('[data-page="policy"][data-applied]');
  assert.match(await page.$eval('[data-role="message"]', (e) => e.textContent ?? ''), /kept as version 1/);
  assert.equal(await curlSynDscp(), EF, 'the next curl\'s SYN carries EF');

  // a syntax error: shown at the checker's line and column, Apply disabled, a direct apply refused
  await typeText(page, BROKEN);
  await page.waitForSelector('[data-role="problems"] li[data-line]');
  const shown = await page.$$eval('[data-role="problems"] li', (l) => l.map((e) => ({ line: e.getAttribute('data-line'), col: e.getAttribute('data-col'), text: e.textContent ?? '' })));
  const file = join(tb.dir, 'broken.yaml');
  writeFileSync(file, BROKEN);
  const cli = sh([process.execPath, QOS, 'policy', 'check', file]);
  assert.equal(cli.status, 65);
  const [, line, col, message] = /broken\.yaml:(\d+):(\d+): (.*)/.exec(cli.stderr)!;
  assert.deepEqual([shown[0]!.line, shown[0]!.col], [line, col], 'the page shows the problem where qos policy check puts it');
  assert.equal(shown[0]!.text, `line ${line}, column ${col}: ${message}`);
  assert.equal(await page.$eval(`[data-line="${line}"].problem`, (e) => e.textContent), line, 'the gutter marks the line');
  assert.equal(await page.$eval('[data-action="apply"]', (e) => (e as unknown as { disabled: boolean }).disabled), true, 'Apply is disabled');
  // clicking the problem puts the caret there
  await page.click('[data-role="problems"] li');
  const caret = await page.$eval('[data-role="editor"]', (e) => {
    const t = e as unknown as { value: string; selectionStart: number };
    const before = t.value.slice(0, t.selectionStart).split('\n');
    return [before.length, before[before.length - 1]!.length + 1];
  });
  assert.deepEqual(caret, [Number(line), Number(col)]);
  await dash.screenshot(page, 'policy-error');

  const running = JSON.parse((await call(dash.admin, 'GET', '/v1/policy')).body) as { sha256: string; text: string };
  const direct = await call(dash.admin, 'POST', '/v1/policy/apply', 30_000, { text: BROKEN, base_sha256: running.sha256 });
  assert.equal(direct.status, 400);
  assert.equal((JSON.parse(direct.body) as { error: { code: string } }).error.code, 'QOS_ERR_POLICY_INVALID');
  assert.equal(running.text, policy('EF'));
  assert.equal(await curlSynDscp(), EF, 'the applied policy still decides');

  // back to the running text; version 1 (AF21) viewed, then restored after its diff
  await page.click('[data-action="revert"]');
  await page.waitForSelector('[data-role="problems"]:empty');
  await page.click('tr[data-key="1"] [data-action="view"]');
  await page.waitForSelector('[data-role="version-text"]', { visible: true });
  assert.equal(await page.$eval('[data-role="version-text"]', (e) => e.textContent), policy('AF21'));
  await page.click('tr[data-key="1"] [data-action="restore"]');
  await page.waitForSelector('[data-action="confirm"]', { visible: true });
  const back = await page.$$eval('table.policy-diff tr.del td.line, table.policy-diff tr.add td.line', (cells) => cells.map((c) => c.textContent));
  assert.deepEqual(back, ['−     action: { dscp: EF }', '+     action: { dscp: AF21 }']);
  await page.click('[data-action="confirm"]');
  await page.waitForSelector('[data-page="policy"][data-applied="2"]');
  assert.match(await page.$eval('[data-role="message"]', (e) => e.textContent ?? ''), /Version 1 restored.*kept as version 2/);
  assert.equal(await page.$eval('[data-role="editor"]', (e) => (e as unknown as { value: string }).value), policy('AF21'));
  assert.equal(await curlSynDscp(), AF21, 'the restored policy decides');

  assert.deepEqual(errors, [], 'no console error, page error or failed request');
});

test('the built-in policy: shown read-only, with what to do to edit it; nothing to apply or restore, no error', async () => {
  const d = await startDashboard({ policy: null });
  try {
    const { page, errors } = await d.openPage('policy');
    assert.equal(await page.$eval('[data-role="editor"]', (e) => (e as unknown as { readOnly: boolean }).readOnly), true);
    assert.match(await page.$eval('[data-page="policy"]', (e) => e.textContent ?? ''), /built-in policy.*start it with --policy FILE/);
    assert.equal(await page.$eval('[data-action="apply"]', (e) => (e as unknown as { disabled: boolean }).disabled), true);
    // the gutter follows the text's scrolling: the line at the top of the text is the number at the top of the gutter
    const lines = await page.$eval('[data-role="editor"]', (e) => (e as unknown as { value: string }).value.split('\n').length);
    assert.equal(await page.$$eval('.policy-gutter > div', (g) => g.length), lines);
    await page.$eval('[data-role="editor"]', (e) => { (e as unknown as { scrollTop: number }).scrollTop = 180; });
    await page.waitForFunction('document.querySelector(".policy-gutter").scrollTop === document.querySelector("[data-role=editor]").scrollTop && document.querySelector("[data-role=editor]").scrollTop > 0');
    await d.screenshot(page, 'policy-built-in');
    assert.deepEqual(errors, []);
  } finally {
    await d.close();
  }
});

test('a policy changed behind the page (qos policy apply meanwhile): Confirm is refused as stale, the page says so and loads the running one on request; nothing of the page\'s edit runs', async () => {
  const d = await startDashboard({ policy: policy('AF21') });
  try {
    const { page, errors } = await d.openPage('policy');
    await typeText(page, policy('EF'));
    await page.waitForSelector('[data-action="apply"]:not([disabled])');
    // someone else applies CS1 through the CLI while the page holds its edit
    const other = join(d.dir, 'other.yaml');
    writeFileSync(other, policy('CS1'));
    assert.equal(sh([process.execPath, QOS, 'policy', 'apply', other, '--admin', d.admin]).status, 0);
    await page.click('[data-action="apply"]');
    await page.waitForSelector('[data-action="confirm"]', { visible: true });
    await page.click('[data-action="confirm"]');
    await page.waitForSelector('[data-action="reload"]', { visible: true });
    assert.match(await page.$eval('[data-role="message"]', (e) => e.textContent ?? ''), /Someone changed the policy since this page loaded it/);
    assert.equal(JSON.parse((await call(d.admin, 'GET', '/v1/policy')).body).text, policy('CS1'), 'the page\'s edit was not applied');
    await page.click('[data-action="reload"]');
    await page.waitForFunction(`document.querySelector('[data-role="editor"]').value.includes('dscp: CS1')`);
    // the refused apply is an error response, which chromium also logs; nothing else went wrong
    const refusal = `HTTP 409: POST ${d.base}api/v1/policy/apply`;
    const logged = 'console: Failed to load resource: the server responded with a status of 409 (Conflict)';
    assert.ok(errors.includes(refusal), errors.join('\n'));
    assert.deepEqual(errors.filter((e) => e !== refusal && e !== logged), [], 'nothing went wrong but the refused apply');
  } finally {
    await d.close();
  }
});
