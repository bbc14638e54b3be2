import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { dumpDom } from '../report/chromium.js';
import { analyzeRun, type ClassSample, type SentDatagram } from './analyze.js';
import { DEMO_DEFAULTS, type DemoResult, type RunResult } from './demo.js';
import { writeReport } from './report.js';
import { requireChromium } from '../prerequisites.js';

const browser = requireChromium();

/** A run of 10 s at 25 datagrams/s with bursts at 2-4 s and 6-8 s: unmarked, nine in ten
 * sent in a burst are lost and the rest wait 120 ms; marked, all arrive in 0.05 ms. */
function run(marked: boolean): RunResult {
  const s = 1_000_000, sent: SentDatagram[] = [], received = new Map<string, number>(), classes: ClassSample[] = [];
  const bursts = [{ on: 2 * s, off: 4 * s }, { on: 6 * s, off: 8 * s }];
  for (let i = 0; i < 250; i++) {
    const t = i * 40_000, inBurst = bursts.some((b) => t >= b.on && t < b.off);
    sent.push({ key: `k${i}`, tUs: t, tos: marked ? 184 : 0, bytes: 1200, family: 4 });
    if (marked || !inBurst) received.set(`k${i}`, t + 50);
    else if (i % 10 === 0) received.set(`k${i}`, t + 120_000);
  }
  for (let k = 0; k <= 40; k++) classes.push({ tUs: k * 250_000, bytes: [k * 300_000, 0, 0, 0, 0, marked ? k * 12_500 : 0, 0, 0], drops: [k * 400, 0, 0, 0, 0, 0, 0, 0] });
  const f = analyzeRun({ startUs: 0, endUs: 10 * s, sent, received, cross: [{ tUs: 3 * s, bytes: 5_000_000 }], bursts, synUs: 2.5 * s, synAckUs: marked ? 2.5 * s + 50 : 4.5 * s, synTos: marked ? 72 : 0, classes, binUs: 2 * s });
  return { ...f, daemon: marked, app_report: { control_setup_ms: marked ? 6.4 : 2046 }, router_drops: [16_000, 0, 0, 0, 0, 0, 0, 0], router_bytes: [12_000_000, 0, 0, 0, 0, marked ? 500_000 : 0, 0, 0] };
}

const result: DemoResult = {
  setup: { ...DEMO_DEFAULTS, topology: { source: '10.91.1.2', cross: '10.91.2.2', sink: '10.91.3.2', router: 'qosdemo1-rt' } },
  runs: { unmarked: run(false), marked: run(true) },
};

/** A PNG's size, from its IHDR chunk (PNG spec 11.2.2: the first chunk, width then height). */
function pngSize(file: string): { width: number; height: number } {
  const b = readFileSync(file);
  assert.equal(b.subarray(12, 16).toString('latin1'), 'IHDR', `${file} is a PNG`);
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

test('the report page links every image it wrote beside it, by relative links that resolve from its directory', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-report-test-'));
  try {
    const files = await writeReport(result, dir);
    for (const f of files) assert.ok(existsSync(f), f);
    const html = readFileSync(join(dir, 'index.html'), 'utf8');
    const hrefs = [...html.matchAll(/<a href="([^"]*)"/g)].map((m) => decodeURIComponent(m[1]!));
    for (const h of hrefs) {
      assert.doesNotMatch(h, /^[a-z]+:|^\/|(^|\/)\.\.(\/|$)/i, `${h} is relative and stays in the directory`);
      assert.ok(existsSync(join(dir, h)), `${h} points at a file that exists`);
    }
    const images = readdirSync(dir).filter((f) => f !== 'index.html');
    assert.equal(images.length, 6 * 2 + 1, `every chart as SVG and PNG, and the page as PNG: ${images}`);
    assert.deepEqual(new Set(hrefs), new Set(images), 'each image linked');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the page image is the whole page: as wide and as tall as Chromium lays it out, the summary inside it and within its column', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-report-test-'));
  try {
    await writeReport(result, dir);
    const png = pngSize(join(dir, 'index.png'));
    const body = /<body([^>]*)>/.exec(dumpDom(browser, join(dir, 'index.html'), png.width))![1]!;
    assert.doesNotMatch(body, /data-error/, 'the page ran without errors');
    const attr = (k: string) => Number(new RegExp(`data-${k}="(\\d+)"`).exec(body)?.[1] ?? NaN);
    assert.equal(attr('drawn'), 6);
    assert.ok(png.height >= attr('page-height'), `the image (${png.height} px) as tall as the page (${attr('page-height')} px)`);
    assert.ok(png.width >= attr('page-width'), `the image (${png.width} px) as wide as the page (${attr('page-width')} px)`);
    assert.ok(attr('summary-bottom') <= png.height && attr('summary-right') <= png.width, `the summary (to ${attr('summary-right')} × ${attr('summary-bottom')} px) inside the image (${png.width} × ${png.height})`);
    assert.equal(attr('summary-overflow'), 0, 'the summary fits its column: nothing cut off or scrolled');
    // The charts come after the summary: a page image cut at one window's height (as
    // Chromium shoots by default) would not reach them.
    assert.ok(png.height > 2000, `the page with its six charts is ${png.height} px tall`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The reserved run: the marked one's wire figures, counted in the RSVP router's classes. */
function reservedRun(): RunResult {
  const m = run(true);
  const classes = m.series.classes.map(([t, v]): [number, number[]] => [t, [v[0]!, v[5]!, 0]]);
  return {
    ...m, series: { ...m.series, classes }, router_classes: ['best effort', 'reserved', 'demoted'], router_drops: [16_000, 0, 0], router_bytes: [12_000_000, 500_000, 0],
    reservation: {
      flowspec: { TokenRate: 82_145, TokenBucketSize: 12_894, MaxSduSize: 1200 }, receivers_ms_after_media_start: 56.6,
      notifications: [{ code: 'RECEIVERS', ms: 56.6, reason: 'Resv WF Controlled Load 657.2 kbit/s' }],
      router: { best_effort_queue: 100, installed: true, ifname: 'snk0', rate_Bps: 82_145, refused: null, events: [] },
      datagrams_before_mark: 8, datagrams_marked: 242,
    },
  };
}

test('with a reserved run: its three charts (the router\'s output by its RSVP classes), and the wider summary still fits its column', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-report-test-'));
  try {
    const withReserved: DemoResult = { ...result, runs: { ...result.runs, reserved: reservedRun() } };
    await writeReport(withReserved, dir, { png: false });
    for (const f of ['delay-reserved.svg', 'loss-reserved.svg', 'classes-reserved.svg']) assert.ok(existsSync(join(dir, f)), f);
    const svg = readFileSync(join(dir, 'classes-reserved.svg'), 'utf8');
    assert.match(svg, /best effort/);
    assert.match(svg, /reserved/);
    assert.doesNotMatch(svg, /precedence 5/);
    const html = readFileSync(join(dir, 'index.html'), 'utf8');
    assert.match(html, /RSVP reservation/);
    assert.match(html, /56\.6 ms after the media began/);
    assert.match(html, /installed on snk0, 657 kb\/s/);
    const body = /<body([^>]*)>/.exec(dumpDom(browser, join(dir, 'index.html')))![1]!;
    assert.doesNotMatch(body, /data-error/, 'the page ran without errors');
    const attr = (k: string) => Number(new RegExp(`data-${k}="(\\d+)"`).exec(body)?.[1] ?? NaN);
    assert.equal(attr('drawn'), 9);
    assert.equal(attr('summary-overflow'), 0, 'the summary fits its column');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
