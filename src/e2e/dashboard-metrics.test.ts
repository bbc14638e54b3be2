/* The dashboard's Metrics page in a real browser (Debian's chromium through puppeteer-core)
 * against a real daemon sampling every second (--metrics-interval, for the test), with its
 * DSCP counters: python3 programs under `qos run` make decisions and send EF datagrams; the
 * page draws four uPlot charts whose latest figures are those of GET /api/v1/metrics/history
 * for the same sample, a DSCP series per class seen, appends the samples that come, stacks the
 * charts at full width on a phone, and reports no error. A fresh daemon's page says when its
 * first sample comes. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { QOS } from './harness.js';
import { NARROW, startDashboard, WIDE, type Dashboard } from './dashboard-browser.js';
import { requireChromium, requireRoot, requireTools } from '../prerequisites.js';
import { ask, login } from '../dashboard/test-client.js';
import type { HistorySample } from '../daemon/metrics-history.js';

// the page's functions run in the browser, where there is a document
interface El { textContent: string | null; dataset: Record<string, string | undefined>; querySelector(s: string): El | null; querySelectorAll(s: string): Iterable<El>; getBoundingClientRect(): { x: number; y: number; width: number; height: number }; width?: number }
declare const document: { querySelector(s: string): El | null; querySelectorAll(s: string): Iterable<El>; documentElement: { scrollWidth: number } };

const CHARTS = ['decisions', 'latency', 'scripts', 'dscp'];
const POLICY = `rules:
  - { name: py-media, match: { exe: "*python3*" }, action: { dscp: EF } }
`;

/** python3 under the agent: a new UDP socket and one datagram to port, every 10 ms for ms. */
function agentTraffic(d: Dashboard, port: number, ms: number): Promise<number | null> {
  const py = `import socket, time\nend = time.time() + ${ms / 1000}\nwhile time.time() < end:\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    s.sendto(b'x' * 200, ('127.0.0.1', ${port}))\n    s.close()\n    time.sleep(0.01)\n`;
  const p = spawn(process.execPath, [QOS, 'run', '--socket', d.socket, '--timeout-ms', '5000', '--', 'python3', '-c', py], { stdio: 'ignore' });
  return new Promise((r) => p.on('exit', (c) => r(c)));
}

/** What the page shows: each chart's sample time, its readouts (series → value) and its
 * uPlot legend's labels, whether it holds a canvas, and where each card is. */
interface Shown { t: string; values: Record<string, string>; labels: string[]; canvas: boolean; box: { x: number; y: number; width: number } }
function shown(): Record<string, Shown> {
  const out: Record<string, Shown> = {};
  for (const card of document.querySelectorAll('[data-card]')) {
    const values: Record<string, string> = {};
    for (const v of card.querySelectorAll('.readout [data-series]')) values[v.dataset.series!] = v.dataset.value!;
    const cv = card.querySelector('[data-chart] canvas');
    const r = card.getBoundingClientRect();
    out[card.dataset.card!] = {
      t: card.dataset.t ?? '', values, labels: [...card.querySelectorAll('[data-chart] .u-legend .u-series .u-label')].map((l) => l.textContent ?? '').slice(1), // (the first: time)
      canvas: !!cv && (cv.width ?? 0) > 0, box: { x: r.x, y: r.y, width: r.width },
    };
  }
  return out;
}

async function history(d: Dashboard): Promise<HistorySample[]> {
  const s = await login(d.base, d.token);
  const r = await ask(d.base, 'GET', '/api/v1/metrics/history', { headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } });
  assert.equal(r.status, 200, r.body);
  return (JSON.parse(r.body) as { samples: HistorySample[] }).samples;
}

/** The figure a readout shows, from the API's sample. */
function apiValue(s: HistorySample, chart: string, series: string): number | null {
  if (chart === 'dscp') return s.dscp?.[series]?.packets_per_s ?? null;
  return s[series as keyof HistorySample] as number | null;
}

test('the Metrics page draws the history: four charts with canvases, figures equal to the API\'s, a series per DSCP class, appended live, stacked on a phone, no error', async () => {
  requireRoot('the daemon runs as root, with its DSCP counters in nftables');
  requireTools('python3', 'nft');
  requireChromium();
  const d = await startDashboard({ policy: POLICY, daemonArgs: ['--kernel', 'on', '--metrics-interval', '1s'] });
  const sink = createSocket('udp4');
  await new Promise<void>((r) => sink.bind(0, '127.0.0.1', r));
  const port = sink.address().port;
  try {
    const traffic = agentTraffic(d, port, 4000);
    const { page, errors } = await d.openPage('metrics', WIDE);
    // until a sample with decisions and EF packets is drawn
    await page.waitForFunction(() => {
      const dec = document.querySelector('[data-card="decisions"] [data-series="decisions_per_s"]')?.dataset.value;
      const ef = document.querySelector('[data-card="dscp"] [data-series="ef"]')?.dataset.value;
      return Number(dec) > 0 && Number(ef) > 0;
    }, { timeout: 90_000, polling: 200 });
    assert.equal(await traffic, 0, 'python3 under qos run');
    const s = await page.evaluate(shown);
    const samples = await history(d);
    assert.deepEqual(Object.keys(s).sort(), [...CHARTS].sort());
    for (const id of CHARTS) {
      const c = s[id]!;
      assert.ok(c.canvas, `${id}: uPlot's canvas`);
      const at = samples.find((x) => x.t === c.t);
      assert.ok(at, `${id}: the sample it shows (${c.t}) is in GET /api/v1/metrics/history`);
      assert.ok(Object.keys(c.values).length > 0, `${id}: figures shown`);
      for (const [series, v] of Object.entries(c.values)) {
        const want = apiValue(at, id, series);
        assert.equal(v, want === null ? 'null' : String(want), `${id} ${series} at ${c.t}`);
      }
    }
    // one series per DSCP class seen, up to the sample shown
    const upTo = samples.filter((x) => Date.parse(x.t) <= Date.parse(s.dscp!.t));
    const classes = new Set(upTo.flatMap((x) => Object.keys(x.dscp ?? {})));
    assert.ok(classes.has('ef'));
    assert.deepEqual(new Set(s.dscp!.labels), new Set([...classes].map((c) => c.toUpperCase())), 'the DSCP chart\'s legend');
    assert.deepEqual(new Set(Object.keys(s.dscp!.values)), classes);
    assert.deepEqual(s.latency!.labels, ['p50 µs', 'p99 µs']);
    assert.deepEqual(s.scripts!.labels, ['calls/s', 'faults/s']);
    // a sample that comes later is appended
    await page.waitForFunction((t: string) => Date.parse(document.querySelector('[data-card="decisions"]')?.dataset.t ?? '') > Date.parse(t), { timeout: 60_000 }, s.decisions!.t);
    await d.screenshot(page, 'metrics');
    // narrow: the charts one under the other, each the page's width
    await page.setViewport(NARROW);
    await page.waitForFunction((w: number) => (document.querySelector('[data-card="dscp"] [data-chart] canvas')?.getBoundingClientRect().width ?? 0) > w * 0.7, { timeout: 30_000 }, NARROW.width);
    const narrow = await page.evaluate(shown);
    const boxes = CHARTS.map((id) => narrow[id]!.box);
    for (let i = 0; i < boxes.length; i++) {
      assert.ok(boxes[i]!.width >= NARROW.width * 0.9, `${CHARTS[i]} is ${boxes[i]!.width} px wide at ${NARROW.width}`);
      if (i) assert.ok(boxes[i]!.y > boxes[i - 1]!.y && Math.abs(boxes[i]!.x - boxes[0]!.x) < 1, `${CHARTS[i]} under ${CHARTS[i - 1]}`);
    }
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth) <= NARROW.width, 'no overflow');
    await d.screenshot(page, 'metrics-narrow');
    await page.close();
    assert.deepEqual(errors, []);
  } finally {
    sink.close();
    await d.close();
  }
});

test('a fresh daemon\'s Metrics page says when the first sample comes, with empty charts and no error, wide and narrow', async () => {
  requireRoot('the daemon runs as root');
  requireChromium();
  const d = await startDashboard({ daemonArgs: ['--metrics-interval', '120s'] });
  try {
    for (const size of [WIDE, NARROW]) {
      const { page, errors } = await d.openPage('metrics', size);
      const status = await page.$eval('section[data-page="metrics"] [role="status"]', (el) => ({ state: (el as unknown as El).dataset.state, text: el.textContent ?? '' }));
      assert.equal(status.state, 'collecting');
      assert.match(status.text, /^collecting: first sample in \d+ s$/);
      const s = await page.evaluate(shown);
      for (const id of CHARTS) assert.ok(s[id]!.canvas, `${id}: its (empty) chart`);
      await d.screenshot(page, `metrics-empty-${size === WIDE ? 'wide' : 'narrow'}`);
      await page.close();
      assert.deepEqual(errors, []);
    }
  } finally {
    await d.close();
  }
});
