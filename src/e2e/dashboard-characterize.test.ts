/* The dashboard's Characterise, Traffic control and RSVP pages in a real browser (headless
 * chromium, dashboard-browser.ts): a capture uploaded in the page shows the knee and TSpec that
 * `qos characterize --json` prints for the same file, and its curve drawn; a daemon with a tc
 * flow on a veth interface of its own lists it as GET /v1/tc does; a daemon with --rsvp on
 * lists its sessions and notifications as GET /v1/rsvp/sessions and /notifications do.
 * Screenshots of each page at both sizes; no console error. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { call, callJson } from '../daemon/admin-client.js';
import { DaemonChild, QOS_CLI } from '../daemon/child.js';
import { runSync } from '../exec.js';
import { PACKAGE_ROOT } from '../paths.js';
import { liveUdpFlow, twoFlowCapture } from '../characterize/test-capture.js';
import { requireRoot, requireTools } from '../prerequisites.js';
import { NARROW, startDashboard, WIDE, type Dashboard } from './dashboard-browser.js';

/** the page's document, in functions run in the browser */
declare const document: { querySelector(s: string): { getAttribute(n: string): string | null } | null; querySelectorAll(s: string): { length: number } };

/** each size and the suffix of its screenshot's name */
const SIZES = [[WIDE, ''], [NARROW, '-narrow']] as const;

const qos = (admin: string, ...args: string[]) => {
  const r = spawnSync(process.execPath, [QOS_CLI, ...args, '--admin', admin], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `qos ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

/** Polls until f() gives a value (a generous deadline: the machine is shared). */
async function until<T>(f: () => Promise<T | null | undefined | false>, what: string, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('Characterise: a capture uploaded in the page shows the knee and TSpec of qos characterize --json, and its curve', async () => {
  requireRoot('the dashboard\'s daemon');
  const d = await startDashboard();
  try {
    const file = join(d.dir, 'two.pcap');
    writeFileSync(file, twoFlowCapture());
    const cli = spawnSync(process.execPath, [QOS_CLI, 'characterize', '--json', file], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(cli.status, 0, cli.stderr);
    const want = JSON.parse(cli.stdout) as { flows: { key: string; knee: { r_Bps: number; b_bytes: number }; tspec: Record<string, number> }[] };

    for (const [size, suffix] of SIZES) {
      const { page, errors } = await d.openPage('characterize', size);
      await page.waitForSelector('[data-page="characterize"][data-ready="1"]');
      const input = await page.waitForSelector('input[type=file]');
      await input!.uploadFile(file);
      await page.waitForSelector('[data-page="characterize"][data-ready="1"] table[data-table="flows"] tr[data-key]');
      const keys = await page.$$eval('table[data-table="flows"] tr[data-key]', (rows) => rows.map((r) => r.getAttribute('data-key')));
      assert.deepEqual(keys, want.flows.map((f) => f.key));
      const knee = await page.$eval('[data-role="knee"]', (e) => ({ r: Number(e.getAttribute('data-r')), b: Number(e.getAttribute('data-b')) }));
      assert.deepEqual(knee, { r: want.flows[0]!.knee.r_Bps, b: want.flows[0]!.knee.b_bytes });
      const tspec = await page.$$eval('dl[data-role="tspec"] dd', (dds) => Object.fromEntries(dds.map((dd) => [dd.getAttribute('data-field'), Number(dd.getAttribute('data-value'))])));
      assert.deepEqual(tspec, want.flows[0]!.tspec);
      assert.ok(await page.$('div[data-chart="curve"] canvas'), 'the curve is drawn on a canvas');

      // the second flow, picked in the table, shows its own TSpec
      await page.click(`table[data-table="flows"] tr[data-key="${want.flows[1]!.key}"]`);
      await page.waitForFunction((b: number | undefined) => Number(document.querySelector('dl[data-role="tspec"] dd[data-field="b"]')?.getAttribute('data-value')) === b, {}, want.flows[1]!.tspec.b);
      await page.click(`table[data-table="flows"] tr[data-key="${want.flows[0]!.key}"]`);
      await page.waitForSelector('div[data-chart="curve"] canvas');
      await d.screenshot(page, `characterize${suffix}`);
      assert.deepEqual(errors, [], 'no console error');
      await page.close();
    }

    // a public capture with two records of impossible times: the page says they were skipped, and where
    const { page, errors } = await d.openPage('characterize', WIDE);
    await page.waitForSelector('[data-page="characterize"][data-ready="1"]');
    const input = await page.waitForSelector('input[type=file]');
    await input!.uploadFile(join(PACKAGE_ROOT, 'test/fixtures/captures/timestamp_invalid_micro.pcap'));
    await page.waitForSelector('[data-page="characterize"][data-ready="1"] table[data-table="flows"] tr[data-key]');
    const said = await page.$eval('[data-role="summary"]', (e) => e.textContent ?? '');
    assert.match(said, /Of its 3 records, 2 damaged, skipped \(timestamp_invalid_micro\.pcap: capture, byte 120: record 2: sub-second time 1000000 is out of range/);
    assert.deepEqual(errors, [], 'no console error');
    await page.close();
  } finally {
    await d.close();
  }
});

test('Characterise: a live flow picked in the page is captured and characterised', async () => {
  requireRoot('a live capture (tcpdump)');
  requireTools('tcpdump');
  const d = await startDashboard();
  const flow = await liveUdpFlow(d.socket, 300);
  try {
    const { page, errors } = await d.openPage('characterize');
    await page.click('button[data-role="refresh"]'); // the flow may have come after the page read the list
    await page.waitForSelector(`select[data-role="live-flow"] option[value="${process.pid}/${flow.fd}"]`, { timeout: 20_000 });
    await page.select('select[data-role="live-flow"]', `${process.pid}/${flow.fd}`);
    await page.$eval('input[data-role="seconds"]', (e) => { (e as unknown as { value: string }).value = '2'; });
    await page.click('button[data-role="capture"]');
    await page.waitForSelector(`[data-page="characterize"][data-ready="1"] table[data-table="flows"] tr[data-key="${flow.key}"]`, { timeout: 30_000 });
    const tspec = await page.$$eval('dl[data-role="tspec"] dd', (dds) => Object.fromEntries(dds.map((dd) => [dd.getAttribute('data-field'), Number(dd.getAttribute('data-value'))])));
    assert.equal(tspec.M, 300, 'the largest packet is the flow\'s');
    assert.equal(tspec.m, 300);
    assert.ok(await page.$('div[data-chart="curve"] canvas'));
    await d.screenshot(page, 'characterize-live');
    assert.deepEqual(errors, []);
    await page.close();
  } finally {
    flow.close();
    await d.close();
  }
});

test('Traffic control: the page lists the interfaces, flows and filters GET /v1/tc gives', async () => {
  requireRoot('traffic control');
  // a veth pair of its own: the machine's interfaces keep their queueing
  const dev = `qdc${process.pid % 100000}a`;
  runSync(['ip', 'link', 'add', dev, 'type', 'veth', 'peer', 'name', dev.replace(/a$/, 'b')], { pkg: 'iproute2' });
  runSync(['ip', 'link', 'set', dev, 'up'], { pkg: 'iproute2' });
  const d = await startDashboard({ daemonArgs: ['--tc', 'on'] });
  try {
    qos(d.admin, 'tc', 'set-interface', dev, '--rate', '100Mbit');
    qos(d.admin, 'tc', 'add-flow', '--dev', dev, '--token-rate', '1Mbit', '--bucket', '10kB', '--service', 'controlled-load');
    qos(d.admin, 'tc', 'add-flow', '--dev', dev, '--token-rate', '2Mbit', '--bucket', '16kB', '--mode', 'shape');
    qos(d.admin, 'tc', 'add-filter', '--flow', '1', '--dst', '192.0.2.10', '--proto', 'udp', '--dport', '5004');
    qos(d.admin, 'tc', 'add-filter', '--flow', '2', '--dst', '192.0.2.11', '--proto', 'tcp', '--dport', '8000-8080');
    const api = await callJson<{ interfaces: { dev: string }[]; flows: { id: number; mode: string }[]; filters: { id: number; dport: string }[] }>(d.admin, 'GET', '/v1/tc');
    for (const [size, suffix] of SIZES) {
      const { page, errors } = await d.openPage('tc', size);
      await page.waitForSelector('[data-page="tc"][data-ready="1"]');
      const rows = (t: string) => page.$$eval(`table[data-table="${t}"] tr[data-key]`, (rs) => rs.map((r) => [r.getAttribute('data-key'), ...[...r.querySelectorAll('td')].map((c) => c.textContent)]));
      assert.deepEqual((await rows('interfaces')).map((r) => r[0]), api.interfaces.map((i) => i.dev));
      const flows = await rows('flows');
      assert.deepEqual(flows.map((r) => r[0]), api.flows.map((f) => String(f.id)));
      assert.deepEqual(flows.map((r) => r[5]), api.flows.map((f) => f.mode));
      const filters = await rows('filters');
      assert.deepEqual(filters.map((r) => r[0]), api.filters.map((f) => String(f.id)));
      assert.deepEqual(filters.map((r) => r[8]), api.filters.map((f) => f.dport));
      await d.screenshot(page, `tc${suffix}`);
      assert.deepEqual(errors, [], 'no console error');
      await page.close();
    }

    // a flow added meanwhile shows within the 2 s refresh; one deleted in the page is gone from the API
    const { page, errors } = await d.openPage('tc');
    await page.waitForSelector('[data-page="tc"][data-ready="1"]');
    qos(d.admin, 'tc', 'add-flow', '--dev', dev, '--token-rate', '500kbit', '--bucket', '4kB', '--name', 'late');
    await page.waitForSelector('table[data-table="flows"] tr[data-key="3"]', { timeout: 20_000 });
    await page.click('table[data-table="flows"] tr[data-key="3"] button[data-role="delete"]');
    await page.click('table[data-table="flows"] tr[data-key="3"] button[data-role="delete"]');
    await until(async () => !(await callJson<{ flows: { id: number }[] }>(d.admin, 'GET', '/v1/tc')).flows.some((f) => f.id === 3), 'flow 3 deleted');
    await page.waitForFunction(() => !document.querySelector('table[data-table="flows"] tr[data-key="3"]'), { timeout: 20_000 });
    assert.deepEqual(errors, []);
    await page.close();
  } finally {
    await d.close();
    runSync(['ip', 'link', 'del', dev], { pkg: 'iproute2' });
  }
});

test('RSVP: the page lists the sessions GET /v1/rsvp/sessions gives and the notifications as they come', async () => {
  requireRoot('RSVP (a raw IP socket) and a network namespace');
  // the dashboard's daemon receives; a sender host in a namespace beside it, over a veth pair
  const tag = process.pid % 250;
  const ns = `qdr${process.pid}`, here = `qdr${tag}a`, there = `qdr${tag}b`;
  const ip = (...a: string[]) => runSync(['ip', ...a], { pkg: 'iproute2' });
  const local = `10.253.${tag}.1`, remote = `10.253.${tag}.2`;
  ip('netns', 'add', ns);
  let sender: DaemonChild | undefined;
  let d: Dashboard | undefined;
  try {
    // the link first: the RSVP host reads its interfaces when it starts
    ip('link', 'add', here, 'type', 'veth', 'peer', 'name', there, 'netns', ns);
    ip('addr', 'add', `${local}/30`, 'dev', here);
    ip('link', 'set', here, 'up');
    ip('-n', ns, 'addr', 'add', `${remote}/30`, 'dev', there);
    ip('-n', ns, 'link', 'set', there, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    d = await startDashboard({ daemonArgs: ['--rsvp', 'on', '--rsvp-refresh', '2s'] });
    sender = await new DaemonChild(join(d.dir, 'sender'), null, ['--kernel', 'off', '--tc', 'off', '--nice', 'keep', '--rsvp', 'on', '--rsvp-refresh', '2s'], ['ip', 'netns', 'exec', ns]).start();

    qos(d.admin, 'rsvp', 'open', '--role', 'receiver', '--dest', local, '--port', '5004', '--proto', 'udp', '--service', 'cl', '--json');
    const { page, errors } = await d.openPage('rsvp');
    await page.waitForSelector('[data-page="rsvp"][data-ready="1"] table[data-table="sessions"] tr[data-key="1"]');
    const empty = await page.$eval('table[data-table="notifications"]', (t) => [t.querySelectorAll('tr[data-key]').length, t.parentElement!.textContent]);
    assert.equal(empty[0], 0);
    assert.match(String(empty[1]), /No notification yet/, 'no notification yet, and the page says so');
    // the sender's Path reaches the receiver here, which is told SENDERS
    qos(sender.admin, 'rsvp', 'open', '--role', 'sender', '--dest', local, '--port', '5004', '--proto', 'udp', '--sport', '40000', '--source', remote, '--rate', '2Mbit', '--bucket', '16kB', '--max', '1028', '--json');
    const admin = d.admin;
    const notifications = async () => (await call(admin, 'GET', '/v1/rsvp/notifications')).body.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { seq: number; code: string });
    const first = await until(async () => (await notifications()).find((n) => n.code === 'SENDERS'), 'SENDERS at the receiver');
    await page.waitForSelector(`table[data-table="notifications"] tr[data-key="${first.seq}"]`, { timeout: 20_000 });
    const sessions = await callJson<{ id: number; role: string }[]>(d.admin, 'GET', '/v1/rsvp/sessions');
    await page.waitForFunction((n: number) => document.querySelectorAll('table[data-table="sessions"] tr[data-key]').length === n, {}, sessions.length);
    const shown = await page.$$eval('table[data-table="sessions"] tr[data-key]', (rs) => rs.map((r) => [r.getAttribute('data-key'), r.querySelectorAll('td')[1]!.textContent]));
    assert.deepEqual(shown, sessions.map((s) => [String(s.id), s.role]));
    // newest first, each with its code, up to the one waited for
    const codes = await page.$$eval('table[data-table="notifications"] tr[data-key]', (rs) => rs.map((r) => [Number(r.getAttribute('data-key')), r.querySelectorAll('td')[2]!.textContent] as [number, string]));
    const upTo = (l: [number, string][]) => l.filter(([seq]) => seq <= first.seq);
    assert.deepEqual(upTo(codes), upTo((await notifications()).map((n) => [n.seq, n.code] as [number, string])).reverse());
    assert.deepEqual(errors, [], 'no console error');
    await page.close();
    for (const [size, suffix] of SIZES) {
      const p = await d.openPage('rsvp', size);
      await p.page.waitForSelector('[data-page="rsvp"][data-ready="1"] table[data-table="notifications"] tr[data-key]');
      await d.screenshot(p.page, `rsvp${suffix}`);
      assert.deepEqual(p.errors, []);
      await p.page.close();
    }
  } finally {
    await sender?.stop().catch(() => undefined);
    await d?.close();
    runSync(['ip', 'netns', 'del', ns], { pkg: 'iproute2' }); // the veth pair goes with it
  }
});
