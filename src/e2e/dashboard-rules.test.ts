/* Issue 22: "Adding and moving a kernel rule in the page changes the mark a static program's
 * packets carry." A daemon with --kernel on runs in the client namespace of a test bed (its
 * nftables table acts there; the browser reaches its dashboard through a bridge); a
 * statically linked sender (agent/test/static_send: the agent cannot reach it, and it is not
 * run under `qos run`) sends UDP to the server namespace, where tcpdump captures and tshark
 * reads the DSCP. Every change is made in the Kernel rules page, after its nft preview. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'puppeteer-core';
import { callJson } from '../daemon/admin-client.js';
import { requireChromium } from '../prerequisites.js';
import { NARROW, startDashboard, WIDE, type Dashboard } from './dashboard-browser.js';
import { AGENT_TEST_BIN, QOS, requireE2e, sh, Testbed, waitFor } from './harness.js';

declare const document: {
  querySelector(s: string): { textContent: string | null; hidden?: boolean; closest(s: string): { hidden: boolean } | null } | null;
  querySelectorAll(s: string): ArrayLike<{ textContent: string | null }>;
  documentElement: { scrollWidth: number };
};

requireE2e('nft', 'socat');
requireChromium();

const STATIC = join(AGENT_TEST_BIN, 'static_send');
const PORT = 7400;
const AF41 = 34, CS5 = 40;
// a policy with one rule the kernel can express (DNS: no packet of this test) and one it
// cannot (exe): the page shows them apart, read-only
const POLICY = `rules:
  - { name: dns, match: { remote_port: 53 }, action: { dscp: CS2 } }
  - { name: py, match: { exe: "*python3*" }, action: { dscp: AF11 } }
`;

let tb: Testbed;
let d: Dashboard;

before(async () => {
  tb = new Testbed();
  d = await startDashboard({ policy: POLICY, daemonArgs: ['--kernel', 'on'], netns: tb.client });
});

after(async () => {
  await d?.close();
  tb?.cleanup();
});

const qos = (...args: string[]) => sh([process.execPath, QOS, ...args, '--admin', d.admin], { timeout: 120_000 });

/** The DSCPs of what the static program sends to the receiver now (5 datagrams, a new flow). */
async function marks(): Promise<number[]> {
  const cap = await tb.capture(`udp and dst port ${PORT}`);
  const r = tb.inClient([STATIC, tb.serverIp, String(PORT), '5', '2000']);
  assert.equal(r.status, 0, r.stderr);
  const pkts = (await cap.packets()).filter((p) => p.dstPort === PORT);
  assert.equal(pkts.length, 5, 'every datagram captured');
  return [...new Set(pkts.map((p) => p.dscp))];
}

const ROWS = 'table[data-table="rules"] tbody tr';

/** The rows of the rule set as the page shows them: [position, name, enabled]. */
const rows = (page: Page) => page.$$eval(ROWS, (trs) => trs.map((tr) => [tr.getAttribute('data-key'), tr.children[1]?.textContent, tr.children[4]?.textContent]));

async function fillRule(page: Page, fields: Record<string, string>): Promise<void> {
  await page.click('[data-action="reset"]');
  for (const [name, value] of Object.entries(fields)) {
    const input = `form[data-role="rule-form"] [name="${name}"]`;
    await page.$eval(input, (el) => { (el as unknown as { value: string }).value = ''; });
    await page.type(input, value);
  }
}

/** Waits for the preview of a change and returns its nft text. */
async function previewText(page: Page): Promise<string> {
  await page.waitForFunction(() => {
    const pre = document.querySelector('pre[data-role="nft-preview"]');
    return !!pre?.textContent && pre.closest('[data-role="preview"]')?.hidden === false;
  }, { timeout: 30_000 });
  return page.$eval('pre[data-role="nft-preview"]', (el) => el.textContent ?? '');
}

/** Clicks Apply and waits until the page shows the set at the revision after it. */
async function applyChange(page: Page): Promise<void> {
  const before = (await callJson<{ revision: number }>(d.admin, 'GET', '/v1/rules')).revision;
  await page.click('[data-action="apply"]');
  await page.waitForFunction((rev: number) => (document.querySelector('[data-role="summary"]')?.textContent ?? '').startsWith(`Revision ${rev} `), { timeout: 60_000 }, before + 1);
}

test('adding and moving a kernel rule in the page changes the mark a static program\'s packets carry', async () => {
  const { page, errors } = await d.openPage('rules', WIDE);
  assert.deepEqual(await rows(page), [], 'an empty set at first');
  const policy = await page.$$eval('table[data-table="policy-rules"] tbody tr', (trs) => trs.map((tr) => [tr.children[1]?.textContent ?? '', tr.children[2]?.textContent ?? '']));
  assert.deepEqual(policy[0], ['dns', 'agent and kernel'], "the policy's kernel rule, apart");
  assert.equal(policy[1]?.[0], 'py');
  assert.match(policy[1]?.[1] ?? '', /^agent only \(/, "the policy's agent-only rule, said so");
  assert.deepEqual(await marks(), [0], 'no rule yet: the static program sends unmarked');

  // add: remote, udp, port -> AF41; the preview is the change's nft text, as the CLI shows it
  await fillRule(page, { name: 'to-receiver', remote: tb.serverIp, proto: 'udp', remote_port: String(PORT), dscp: 'AF41' });
  await page.click('[data-action="preview-rule"]');
  const text = await previewText(page);
  assert.match(text, /^# transaction 1 of 2: prepare \(\d+ commands\)$/m);
  assert.match(text, /^# transaction 2 of 2: switch \(\d+ commands\)$/m);
  // the new rule's key (any source, the receiver, udp, any source port, the port) in a layer's
  // map, to its number's chain; its number to the AF41 action
  const element = text.split('\n').find((l) => l.startsWith(`add element inet ${d.daemon.nftTable} m4_0_`) && l.includes(`0.0.0.0/0 . ${tb.serverIp} . 17 . 0-65535 . ${PORT} comment "r1" : goto n`));
  assert.ok(element, text);
  assert.match(text, /^add element inet \S+ byid4 \{ 0x[0-9a-f]{8} comment "r1" : goto a4_d34 \}$/m);
  assert.match(text, /^add rule inet \S+ a4_d34 ip dscp set 34 accept$/m, 'the action: DSCP 34, AF41');
  const cli = qos('rules', 'add', '--name', 'to-receiver', '--remote', tb.serverIp, '--proto', 'udp', '--remote-port', String(PORT), '--dscp', 'AF41', '--dry-run', '--nft');
  assert.equal(cli.status, 0, cli.stderr);
  assert.equal(text, cli.stdout, 'the page shows what `qos rules add ... --dry-run --nft` prints: one route for both');
  assert.deepEqual(await rows(page), [], 'nothing applied before Apply');
  assert.deepEqual(await marks(), [0], 'a preview changes nothing');
  await d.screenshot(page, 'rules-preview-1280x800');
  await applyChange(page);
  assert.deepEqual(await rows(page), [['1', 'to-receiver', 'yes']]);
  assert.deepEqual(await marks(), [AF41], 'the next packets carry AF41');

  // a second rule, same match, CS5, at the end: first match wins (docs/kernel-rules.md)
  await fillRule(page, { name: 'cs5', remote: tb.serverIp, proto: 'udp', remote_port: String(PORT), dscp: 'CS5' });
  await page.click('[data-action="preview-rule"]');
  assert.match(await previewText(page), /a4_d40 ip dscp set 40 accept/);
  await applyChange(page);
  assert.deepEqual(await rows(page), [['1', 'to-receiver', 'yes'], ['2', 'cs5', 'yes']]);
  assert.deepEqual(await marks(), [AF41], 'the rule after it never matches: still AF41');

  // moved to position 1 in the page: CS5
  await page.click(`${ROWS}[data-key="2"] [data-action="up"]`);
  assert.match(await previewText(page), /^flush chain /m, 'a move rewrites chains');
  await applyChange(page);
  assert.deepEqual(await rows(page), [['1', 'cs5', 'yes'], ['2', 'to-receiver', 'yes']]);
  assert.deepEqual(await marks(), [CS5], 'moved first: the packets carry CS5');

  // disabled: back to AF41, the rule still in its place
  await page.click(`${ROWS}[data-key="1"] [data-action="disable"]`);
  await previewText(page);
  await applyChange(page);
  assert.deepEqual(await rows(page), [['1', 'cs5', 'no'], ['2', 'to-receiver', 'yes']]);
  assert.deepEqual(await marks(), [AF41], 'disabled: AF41 again');

  // the counters, read again every 2 s by the page: to-receiver took 15 packets (3 × 5)
  await waitFor('the page to show the counter the API has', async () =>
    (await page.$eval(`${ROWS}[data-key="2"] [data-col="packets"]`, (td) => td.textContent)) === '15', 200);
  const listed = await callJson<{ rules: { name: string; packets: number; bytes: number }[] }>(d.admin, 'GET', '/v1/rules');
  assert.equal(listed.rules.find((r) => r.name === 'to-receiver')?.packets, 15, 'the API counts what the page shows');
  await d.screenshot(page, 'rules-1280x800');
  await page.close();
  assert.deepEqual(errors, []);
});

test('refused changes are shown with their message and change nothing: a bad address, a stale revision', async () => {
  const { page, errors } = await d.openPage('rules', WIDE);
  const exported = qos('rules', 'export').stdout;
  await fillRule(page, { remote: '10.0.0.300', dscp: 'AF41' });
  await page.click('[data-action="preview-rule"]');
  await page.waitForSelector('[data-role="error"]:not([hidden])');
  const bad = await page.$eval('[data-role="error"]', (el) => el.textContent ?? '');
  assert.match(bad, /QOS_ERR_RULES_INVALID/);
  assert.match(bad, /match\.remote/, 'the problem names its field');
  assert.equal(await page.$eval('[data-role="preview"]', (el) => (el as unknown as { hidden: boolean }).hidden), true, 'no preview of a bad rule');

  // a preview, then someone else changes the set: Apply is refused, nothing of it is applied
  await page.click(`${ROWS}[data-key="2"] [data-action="delete"]`);
  await previewText(page);
  const other = qos('rules', 'add', '--name', 'other', '--remote', '192.0.2.99', '--dscp', 'EF');
  assert.equal(other.status, 0, other.stderr);
  await page.click('[data-action="apply"]');
  await page.waitForFunction(() => /QOS_ERR_RULES_STALE/.test(document.querySelector('[data-role="error"]')?.textContent ?? ''), { timeout: 30_000 });
  assert.match(await page.$eval('[data-role="error"]', (el) => el.textContent ?? ''), /revision/);
  await waitFor('the page to show the set with the other change', async () => (await rows(page)).length === 3, 200);
  assert.deepEqual(await rows(page), [['1', 'cs5', 'no'], ['2', 'to-receiver', 'yes'], ['3', 'other', 'yes']], 'to-receiver was not deleted');
  assert.deepEqual(await marks(), [AF41]);
  assert.notEqual(qos('rules', 'export').stdout, exported);
  assert.equal(qos('rules', 'delete', 'other').status, 0);
  assert.equal(qos('rules', 'export').stdout, exported, 'the set as it was');

  // the two refusals, and only they, are the page's errors (the browser logs a refused request)
  const expected = [/HTTP 400: POST .*\/api\/v1\/rules$/, /HTTP 409: DELETE .*\/api\/v1\/rules\/2$/, /console: Failed to load resource: the server responded with a status of (400|409)/];
  assert.deepEqual(errors.filter((e) => !expected.some((re) => re.test(e))), [], errors.join('\n'));
  assert.ok(errors.some((e) => /HTTP 400/.test(e)) && errors.some((e) => /HTTP 409/.test(e)), errors.join('\n'));
  await page.close();
});

test('edit a rule in the form, enable a rule again, the whole set off and on: each previewed, each seen on the wire', async () => {
  const { page, errors } = await d.openPage('rules', WIDE);
  await page.click(`${ROWS}[data-key="2"] [data-action="edit"]`);
  const form = (name: string) => page.$eval(`form[data-role="rule-form"] [name="${name}"]`, (el) => (el as unknown as { value: string }).value);
  assert.deepEqual([await form('name'), await form('remote'), await form('proto'), await form('remote_port'), await form('dscp'), await form('position')],
    ['to-receiver', tb.serverIp, 'udp', String(PORT), 'AF41', '2'], 'the form holds the rule');
  await page.$eval('form[data-role="rule-form"] [name="dscp"]', (el) => { (el as unknown as { value: string }).value = ''; });
  await page.type('form[data-role="rule-form"] [name="dscp"]', 'EF');
  await page.click('[data-action="preview-rule"]');
  assert.match(await previewText(page), /ip dscp set 46 accept/);
  assert.match(await page.$eval('[data-role="preview"] h2', (el) => el.textContent ?? ''), /^Replace rule 2/);
  await applyChange(page);
  assert.deepEqual(await rows(page), [['1', 'cs5', 'no'], ['2', 'to-receiver', 'yes']]);
  assert.deepEqual(await marks(), [46], 'edited: EF');

  await page.click(`${ROWS}[data-key="1"] [data-action="enable"]`);
  await previewText(page);
  await applyChange(page);
  assert.deepEqual(await rows(page), [['1', 'cs5', 'yes'], ['2', 'to-receiver', 'yes']]);
  assert.deepEqual(await marks(), [CS5], 'enabled again, first: CS5');

  await page.click('[data-action="set-disable"]');
  await previewText(page);
  await applyChange(page);
  assert.match(await page.$eval('[data-role="summary"]', (el) => el.textContent ?? ''), /the set is disabled/);
  assert.deepEqual(await marks(), [0], 'the set disabled: unmarked');
  await page.click('[data-action="set-enable"]');
  await previewText(page);
  await applyChange(page);
  assert.deepEqual(await marks(), [CS5]);
  await page.close();
  assert.deepEqual(errors, []);
});

test('export as text and as a downloaded file; import a file in the page, previewed, changes the marks', async () => {
  const { page, errors } = await d.openPage('rules', WIDE);
  await page.click('[data-action="export"]');
  await page.waitForFunction(() => !!(document.querySelector('[data-role="export-text"]') as unknown as { value?: string } | null)?.value, { timeout: 30_000 });
  const shown = await page.$eval('[data-role="export-text"]', (el) => (el as unknown as { value: string }).value);
  const exported = qos('rules', 'export').stdout;
  assert.equal(shown, exported, 'the page shows what `qos rules export` prints');

  const downloads = join(tb.dir, 'downloads');
  const cdp = await page.createCDPSession();
  await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: downloads, eventsEnabled: true });
  await page.click('[data-action="download"]');
  await waitFor('the downloaded file', () => existsSync(downloads) && readdirSync(downloads).some((f) => f.endsWith('.json')), 100);
  const file = readdirSync(downloads).find((f) => f.endsWith('.json'))!;
  assert.match(file, /^qosd-rules-r\d+\.json$/);
  await waitFor('the download complete', () => readFileSync(join(downloads, file), 'utf8') === exported, 100, 10_000);

  // a file with to-receiver disabled (and cs5 as it is): imported through the file input
  const set = JSON.parse(exported) as { rules: { name: string; enabled?: boolean }[] };
  for (const r of set.rules) { if (r.name === 'to-receiver') r.enabled = false; else delete r.enabled; }
  const upload = join(tb.dir, 'swapped.json');
  writeFileSync(upload, JSON.stringify(set, null, 2));
  const input = (await page.$('input[data-role="import-file"]'))!;
  await input.uploadFile(upload);
  await page.waitForFunction(() => (document.querySelector('[data-role="import-text"]') as unknown as { value: string }).value.includes('"to-receiver"'), { timeout: 30_000 });
  await page.click('[data-action="import"]');
  assert.match(await previewText(page), /^# transaction/m);
  assert.match(await page.$eval('[data-role="preview"] h2', (el) => el.textContent ?? ''), /Import swapped\.json/);
  await applyChange(page);
  assert.deepEqual(await rows(page), [['1', 'cs5', 'yes'], ['2', 'to-receiver', 'no']]);
  assert.deepEqual(await marks(), [CS5], 'the imported set decides');
  await page.close();
  assert.deepEqual(errors, []);
});

test('on a phone (390×844): the set as cards, a preview, Cancel changes nothing; no overflow, no error', async () => {
  const { page, errors } = await d.openPage('rules', NARROW);
  const before = qos('rules', 'export').stdout;
  assert.equal((await rows(page)).length, 2);
  await d.screenshot(page, 'rules-390x844');
  await page.click(`${ROWS}[data-key="1"] [data-action="delete"]`);
  await previewText(page);
  await d.screenshot(page, 'rules-preview-390x844');
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth) <= NARROW.width, 'the page is no wider than the phone');
  await page.click('[data-action="cancel"]');
  assert.equal(await page.$eval('[data-role="preview"]', (el) => (el as unknown as { hidden: boolean }).hidden), true);
  assert.equal(qos('rules', 'export').stdout, before, 'cancelled: nothing applied');
  assert.equal((await rows(page)).length, 2);
  await page.close();
  assert.deepEqual(errors, []);
});
