/* `qos demo --report DIR`: a self-contained HTML page (uPlot and the data inlined; open it
 * from disk, no server) with the summary table and, per run, the media's one-way delay over
 * time with the bursts shaded, its loss per 2 s interval and the router's throughput per
 * precedence class; the same charts as SVG files, and as PNG when Chromium is installed to
 * render them, with the whole page as one PNG too. The page links every image beside it. */

import { mkdirSync, readFileSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { findChromium, screenshot, screenshotPage } from '../report/chromium.js';
import { renderSvg, type ChartSpec } from '../report/svg-chart.js';
import type { DemoResult, RunName } from './demo.js';
import { demoTable } from './table.js';

const PRECEDENCE_COLORS = ['#7f7f7f', '#1f77b4', '#2ca02c', '#17becf', '#9467bd', '#d62728', '#ff7f0e', '#8c564b'];
const RUN_LABEL: Record<RunName, string> = { unmarked: 'without the daemon', marked: 'with the daemon', reserved: 'with an RSVP reservation' };
/** Colours of the RSVP router's classes (reservation.ts RSVP_CLASSES): best effort as precedence 0. */
const RSVP_CLASS_COLORS = ['#7f7f7f', '#d62728', '#1f77b4'];
const SIZE = { width: 800, height: 320 };
/** The page image's width: the page's 900 px column and its margins. */
const PAGE_WIDTH = 960;

/** The charts of a demo result, in page order. */
export function demoCharts(r: DemoResult): ChartSpec[] {
  const specs: ChartSpec[] = [];
  for (const name of ['unmarked', 'marked', 'reserved'] as const) {
    const run = r.runs[name];
    if (!run) continue;
    const s = run.series, label = RUN_LABEL[name];
    specs.push({
      id: `delay-${name}`, title: `Media one-way delay, ${label} (bursts shaded)`, xLabel: 'time (s)', yLabel: 'delay (ms, log)', yLog: true,
      x: s.delay.map((d) => d[0]), series: [{ label: 'datagram delay', color: '#1f77b4', style: 'points', values: s.delay.map((d) => d[1]) }], bands: s.bursts,
    });
    specs.push({
      id: `loss-${name}`, title: `Media loss per ${s.loss_bin_s} s interval, ${label}`, xLabel: 'time (s)', yLabel: 'loss (%)', yMin: 0, yMax: 100,
      // a bar stands at the middle of its interval
      x: s.loss.map((l) => l[0] + s.loss_bin_s / 2),
      series: [{ label: 'loss', color: '#d62728', style: 'bars', values: s.loss.map((l) => l[1]) }], bands: s.bursts,
    });
    const named = run.router_classes;
    const used = (named ?? PRECEDENCE_COLORS).map((_, k) => k).filter((k) => s.classes.some((c) => c[1][k]! > 0));
    specs.push({
      id: `classes-${name}`, title: `Router output by ${named ? 'RSVP router class' : 'precedence class'}, ${label}`, xLabel: 'time (s)', yLabel: 'Mb/s', yMin: 0,
      x: s.classes.map((c) => c[0]),
      series: used.map((k) => ({ label: named ? named[k]! : `precedence ${k}`, color: (named ? RSVP_CLASS_COLORS : PRECEDENCE_COLORS)[k]!, style: 'line' as const, values: s.classes.map((c) => c[1][k]!) })), bands: s.bursts,
    });
  }
  return specs;
}

const esc = (s: string) => s.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]!);

/** Draws the specs with uPlot; when done, body gets data-drawn (charts made), data-ink
 * (painted pixels per chart canvas), or data-error, and the layout as drawn:
 * data-page-width and data-page-height (the page's scroll size, which screenshotPage
 * shoots), data-summary-bottom and data-summary-right (the summary's extent on the page) and
 * data-summary-overflow (1 if the summary is wider than its column). Tests read them. */
const PAGE_SCRIPT = `
window.addEventListener('error', (e) => { document.body.dataset.error = String(e.message); });
(function () {
  const specs = JSON.parse(document.getElementById('charts-data').textContent);
  const made = [];
  for (const c of specs) {
    const bands = (u) => {
      const ctx = u.ctx; ctx.save(); ctx.fillStyle = 'rgba(244,199,161,0.45)';
      for (const [a, b] of c.bands) {
        const x0 = u.valToPos(a, 'x', true), x1 = u.valToPos(b, 'x', true);
        ctx.fillRect(x0, u.bbox.top, Math.max(1, x1 - x0), u.bbox.height);
      }
      ctx.restore();
    };
    const series = c.series.map((s) => ({
      label: s.label, stroke: s.color, width: s.style === 'points' ? 0 : 1.5,
      fill: s.style === 'bars' ? s.color : undefined,
      paths: s.style === 'bars' ? uPlot.paths.bars({ size: [0.8] }) : s.style === 'points' ? () => null : undefined,
      points: s.style === 'points' ? { show: true, size: 3, fill: s.color, stroke: s.color } : { show: false },
    }));
    const y = c.yLog ? { distr: 3 } : { range: (u, lo, hi) => [c.yMin ?? Math.min(0, lo), Math.max(c.yMax ?? -Infinity, hi || 1)] };
    const opts = {
      title: c.title, width: ${SIZE.width}, height: ${SIZE.height},
      scales: { x: { time: false }, y },
      axes: [{ label: c.xLabel }, { label: c.yLabel }],
      series: [{ label: c.xLabel }, ...series],
      hooks: { drawClear: [bands] },
    };
    made.push(new uPlot(opts, [c.x, ...c.series.map((s) => s.values)], document.getElementById(c.id)));
  }
  setTimeout(() => {
    const ink = made.map((u) => {
      const cv = u.ctx.canvas, d = u.ctx.getImageData(0, 0, cv.width, cv.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250)) n++;
      return n;
    });
    const b = document.body.dataset, root = document.documentElement, summary = document.getElementById('summary');
    b.ink = ink.join(',');
    b.pageWidth = String(root.scrollWidth);
    b.pageHeight = String(root.scrollHeight);
    let bottom = 0, right = 0;
    for (const e of [summary, ...summary.querySelectorAll('*')]) {
      const r = e.getBoundingClientRect();
      bottom = Math.max(bottom, r.bottom + scrollY);
      right = Math.max(right, r.right + scrollX);
    }
    b.summaryBottom = String(Math.ceil(bottom));
    b.summaryRight = String(Math.ceil(right));
    b.summaryOverflow = summary.scrollWidth > summary.clientWidth ? '1' : '0';
    b.drawn = String(made.length);
  }, 50);
})();
`;

/** Relative links to images beside the page: names only, so they work from the directory. */
function links(files: string[]): string {
  return files.map((f) => `<a href="${encodeURIComponent(f)}">${esc(f)}</a>`).join(', ');
}

/** What the page links: each chart's images, and the page's own image. */
export interface ReportImages { charts: Map<string, string[]>; page: string | null }

function summaryHtml(r: DemoResult): string {
  const t = demoTable(r);
  const row = (cells: string[], cell: 'td' | 'th') => `<tr><th scope="row">${esc(cells[0]!)}</th>${cells.slice(1).map((c) => `<${cell}>${esc(c)}</${cell}>`).join('')}</tr>`;
  return `<section id="summary">
<table>
<caption>${esc(t.title)}</caption>
<thead>${row(t.head, 'th')}</thead>
<tbody>
${t.rows.map((cells) => row(cells, 'td')).join('\n')}
</tbody>
</table>
${t.conclusion ? `<p>${esc(t.conclusion)}</p>` : ''}
</section>`;
}

export function demoHtml(r: DemoResult, specs: ChartSpec[], images: ReportImages = { charts: new Map(), page: null }): string {
  const require = createRequire(import.meta.url);
  const uplotJs = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  // Inline data must not end the script element early.
  const data = JSON.stringify(specs).replace(/</g, '\\u003c');
  const figures = specs.map((s) => {
    const files = images.charts.get(s.id) ?? [];
    return `<figure><div id="${esc(s.id)}"></div>${files.length ? `<figcaption>As an image: ${links(files)}</figcaption>` : ''}</figure>`;
  });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>qos demo report</title>
<style>${uplotCss}
body { font-family: sans-serif; margin: 24px; max-width: 900px; }
#summary table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
#summary caption { text-align: left; font-weight: bold; padding-bottom: 8px; }
#summary th, #summary td { text-align: left; padding: 3px 14px 3px 0; border-bottom: 1px solid #e4e4e4; }
#summary tbody th { font-weight: normal; }
figure { margin: 18px 0; }
figcaption { font-size: 90%; color: #444; }
</style></head>
<body>
<h1>qos demo</h1>
<p>The paper's section 5 experiment over IPv${r.setup.family}: an unmodified media application sends across a ${r.setup.bottleneckBps / 1e6} Mb/s link that a router
queues by IP precedence (${r.setup.scheduler}); cross traffic fills it in bursts (shaded). First without the policy daemon, then with it${r.runs.reserved ? '; then with the media reserved by RSVP, the router running <code>qos rsvp router</code> on that link instead of the precedence queues' : ''}.</p>
${summaryHtml(r)}
${images.page ? `<p>This page as one image: ${links([images.page])}</p>` : ''}
<div id="charts">
${figures.join('\n')}
</div>
<script id="charts-data" type="application/json">${data}</script>
<script>${uplotJs}</script>
<script>${PAGE_SCRIPT}</script>
</body></html>
`;
}

/** Writes the report into dir; returns the files written, the page first. */
export async function writeReport(r: DemoResult, dir: string, o: { png?: boolean } = {}): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const specs = demoCharts(r);
  const browser = o.png === false ? null : findChromium();
  const images: ReportImages = { charts: new Map(), page: browser ? 'index.png' : null };
  for (const s of specs) {
    const svg = `${s.id}.svg`;
    writeFileAtomic(join(dir, svg), renderSvg(s));
    images.charts.set(s.id, [svg]);
    if (browser) {
      // under its own name only once whole
      const tmp = join(dir, `.${s.id}.${process.pid}.png`);
      screenshot(browser, join(dir, svg), tmp, SIZE.width, SIZE.height);
      renameSync(tmp, join(dir, `${s.id}.png`));
      images.charts.get(s.id)!.push(`${s.id}.png`);
    }
  }
  const html = join(dir, 'index.html');
  writeFileAtomic(html, demoHtml(r, specs, images));
  if (browser) {
    const tmp = join(dir, `.index.${process.pid}.png`);
    screenshotPage(browser, html, tmp, PAGE_WIDTH);
    renameSync(tmp, join(dir, images.page!));
  }
  const beside = [...(images.page ? [images.page] : []), ...[...images.charts.values()].flat()];
  return [html, ...beside.map((f) => join(dir, f))];
}
