/* The picture of one flow's characterisation, as one SVG (and a PNG from it when Chromium is
 * there): its (r, b) curve on log axes with the knee marked, and its cumulative traffic d(t)
 * against the suggested token bucket's line b + r t. */

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { QosError } from '../errors.js';
import { findChromium, screenshot } from '../report/chromium.js';
import { renderSvg } from '../report/svg-chart.js';
import type { FlowResult } from './offline.js';

/** Cumulative traffic of a flow at evenly spaced instants (constant memory). */
export class CumulativeSampler {
  readonly values: Float64Array;
  private total = 0;
  private filled = 0;
  constructor(readonly start: number, readonly end: number, readonly points = 400) {
    this.values = new Float64Array(points + 1);
  }
  add(t: number, size: number): void {
    const step = (this.end - this.start) / this.points || 1;
    const i = Math.min(this.points, Math.max(0, Math.floor((t - this.start) / step)));
    while (this.filled < i) this.values[this.filled++] = this.total; // d(t) before this packet
    this.total += size;
    this.values[i] = this.total;
    if (this.filled === i) this.filled = i + 1;
  }
  /** [time since the start, bytes sent by then] pairs: value i counts the packets before the
   * end of interval i */
  series(): { t: number[]; d: number[] } {
    while (this.filled <= this.points) this.values[this.filled++] = this.total;
    const span = this.end - this.start, step = span / this.points;
    return { t: Array.from(this.values, (_, i) => Math.min(span, (i + 1) * step)), d: Array.from(this.values) };
  }
}

const H = 320;

export function plotSvg(f: FlowResult, cum: { t: number[]; d: number[] }, unit: 'bytes' | 'packets'): string {
  const u = unit === 'bytes' ? 'B' : 'pkt';
  const curve = renderSvg({
    id: 'rb', title: `${f.key}: least bucket b for each rate r (knee ${Math.round(f.knee.r_Bps)} ${u}/s, ${Math.round(f.knee.b_bytes)} ${u})`,
    xLabel: `r, ${u}/s`, yLabel: `b, ${u}`, x: f.curve.map((p) => p.r_Bps), bands: [], xLog: true, yLog: true,
    series: [
      { label: 'b(r)', color: '#1f77b4', style: 'line', values: f.curve.map((p) => p.b_bytes) },
      { label: 'knee', color: '#d62728', style: 'marker', values: f.curve.map((p) => (p.r_Bps === f.knee.r_Bps ? p.b_bytes : null)) },
    ],
  });
  const line = cum.t.map((t) => f.tspec.b + f.tspec.r * t);
  const traffic = renderSvg({
    id: 'cum', title: `cumulative traffic against the token bucket (r = ${Math.round(f.tspec.r)} ${u}/s, b = ${Math.round(f.tspec.b)} ${u})`,
    xLabel: 's', yLabel: u, x: cum.t, bands: [],
    series: [
      { label: 'd(t)', color: '#1f77b4', style: 'line', values: cum.d },
      { label: 'b + r t', color: '#d62728', style: 'line', values: line },
    ],
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="800" height="${2 * H}" viewBox="0 0 800 ${2 * H}">`,
    curve.replace('<svg ', '<svg y="0" '),
    traffic.replace('<svg ', `<svg y="${H}" `),
    '</svg>',
  ].join('\n');
}

/** Writes the plot to out: SVG, or PNG (rendered from the SVG by Chromium). */
export function writePlot(out: string, svg: string): void {
  if (out.endsWith('.svg')) { writeFileAtomic(out, svg); return; }
  if (!out.endsWith('.png')) throw new QosError('QOS_ERR_USAGE', `--plot ${out}: name an .svg or a .png file`);
  const browser = findChromium();
  if (!browser) throw new QosError('QOS_ERR_ENVIRONMENT', '--plot to PNG needs Chromium (apt-get install chromium); an .svg needs nothing');
  // Chromium writes the PNG by name, following links: it works in a directory of our own
  // (mkdtemp: new, 0700, an unguessable name), and the result is put in place atomically.
  const tmp = mkdtempSync(join(dirname(out), `.${basename(out)}.`));
  try {
    const svgFile = join(tmp, 'plot.svg'), pngFile = join(tmp, 'plot.png');
    writeFileSync(svgFile, svg);
    screenshot(browser, svgFile, pngFile, 800, 2 * H);
    writeFileAtomic(out, readFileSync(pngFile));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
