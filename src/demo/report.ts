/* `qos demo --report DIR`: a self-contained HTML page (uPlot and the data inlined; open it
 * from disk, no server) with, per run, the media's one-way delay over time with the bursts
 * shaded, its loss per 2 s interval and the router's throughput per precedence class; the
 * same charts as SVG files, and as PNG when Chromium is installed to render them. */

import { mkdirSync, readFileSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { findChromium, screenshot } from '../report/chromium.js';
import { renderSvg, type ChartSpec } from '../report/svg-chart.js';
import type { DemoResult, RunName } from './demo.js';
import { formatDemo } from './table.js';

const PRECEDENCE_COLORS = ['#7f7f7f', '#1f77b4', '#2ca02c', '#17becf', '#9467bd', '#d62728', '#ff7f0e', '#8c564b'];
const RUN_LABEL: Record<RunName, string> = { unmarked: 'without the daemon', marked: 'with the daemon' };
const SIZE = { width: 800, height: 320 };

/** The charts of a demo result, in page order. */
export function demoCharts(r: DemoResult): ChartSpec[] {
  const specs: ChartSpec[] = [];
  for (const name of ['unmarked', 'marked'] as const) {
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
    const used = [0, 1, 2, 3, 4, 5, 6, 7].filter((p) => s.classes.some((c) => c[1][p]! > 0));
    specs.push({
      id: `classes-${name}`, title: `Router output by precedence class, ${label}`, xLabel: 'time (s)', yLabel: 'Mb/s', yMin: 0,
      x: s.classes.map((c) => c[0]), series: used.map((p) => ({ label: `precedence ${p}`, color: PRECEDENCE_COLORS[p]!, style: 'line' as const, values: s.classes.map((c) => c[1][p]!) })), bands: s.bursts,
    });
  }
  return specs;
}

const esc = (s: string) => s.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]!);

/** Draws the specs with uPlot; when done, body gets data-drawn (charts made) and data-ink
 * (painted pixels per chart canvas), or data-error. A screenshot test reads them. */
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
    const el = document.createElement('div');
    el.id = c.id;
    document.getElementById('charts').appendChild(el);
    made.push(new uPlot(opts, [c.x, ...c.series.map((s) => s.values)], el));
  }
  setTimeout(() => {
    const ink = made.map((u) => {
      const cv = u.ctx.canvas, d = u.ctx.getImageData(0, 0, cv.width, cv.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250)) n++;
      return n;
    });
    document.body.dataset.ink = ink.join(',');
    document.body.dataset.drawn = String(made.length);
  }, 50);
})();
`;

export function demoHtml(r: DemoResult, specs: ChartSpec[]): string {
  const require = createRequire(import.meta.url);
  const uplotJs = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  // Inline data must not end the script element early.
  const data = JSON.stringify(specs).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>qos demo report</title>
<style>${uplotCss}
body { font-family: sans-serif; margin: 24px; max-width: 900px; }
pre { background: #f6f6f6; padding: 12px; overflow-x: auto; }
#charts > div { margin: 18px 0; }
</style></head>
<body>
<h1>qos demo</h1>
<p>The paper's section 5 experiment: an unmodified media application sends across a ${r.setup.bottleneckBps / 1e6} Mb/s link that a router
queues by IP precedence (${r.setup.scheduler}); cross traffic fills it in bursts (shaded). First without the policy daemon, then with it.</p>
<pre>${esc(formatDemo(r))}</pre>
<div id="charts"></div>
<script id="charts-data" type="application/json">${data}</script>
<script>${uplotJs}</script>
<script>${PAGE_SCRIPT}</script>
</body></html>
`;
}

/** Writes the report into dir; returns the files written. */
export async function writeReport(r: DemoResult, dir: string, o: { png?: boolean } = {}): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const specs = demoCharts(r);
  const files: string[] = [];
  const html = join(dir, 'index.html');
  writeFileAtomic(html, demoHtml(r, specs));
  files.push(html);
  for (const s of specs) {
    const f = join(dir, `${s.id}.svg`);
    writeFileAtomic(f, renderSvg(s));
    files.push(f);
  }
  const browser = o.png === false ? null : findChromium();
  if (browser) {
    for (const s of specs) {
      const png = join(dir, `${s.id}.png`);
      const tmp = join(dir, `.${s.id}.${process.pid}.png`);
      screenshot(browser, join(dir, `${s.id}.svg`), tmp, SIZE.width, SIZE.height);
      renameSync(tmp, png);
      files.push(png);
    }
  }
  return files;
}
