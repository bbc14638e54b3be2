/* Charts as standalone SVG documents (no browser, no dependency): points, lines or bars over
 * a shared x axis, shaded x ranges (e.g. burst periods), linear or log y. The same chart
 * specs feed the interactive uPlot charts of the HTML reports. */

export interface Series {
  label: string;
  color: string;
  /** one value per x; null = no value there */
  values: Array<number | null>;
  /** marker: a larger circle at each value (to point at one point of a line) */
  style: 'points' | 'line' | 'bars' | 'marker';
}

export interface ChartSpec {
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  x: number[];
  series: Series[];
  /** x ranges to shade */
  bands: Array<[number, number]>;
  yLog?: boolean;
  xLog?: boolean;
  /** y range to show at least (e.g. [0, 100] for a percentage) */
  yMin?: number;
  yMax?: number;
}

const W = 800, H = 320, L = 64, R = 16, T = 36, B = 48;

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
const f = (n: number) => (Math.round(n * 10) / 10).toString();

/** Round tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.round(v / step) * step);
  return out;
}

function label(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1000 || a < 0.01) return v.toExponential(0);
  return String(Number(v.toPrecision(3)));
}

export function renderSvg(c: ChartSpec): string {
  const xs = c.x;
  let x0 = Math.min(...xs, ...c.bands.map((b) => b[0])), x1 = Math.max(...xs, ...c.bands.map((b) => b[1]));
  if (c.xLog) {
    const pos = xs.filter((x) => x > 0);
    x0 = 10 ** Math.floor(Math.log10(pos.length ? Math.min(...pos) : 1));
    x1 = 10 ** Math.ceil(Math.log10(Math.max(...pos, x0 * 10)));
  }
  const all = c.series.flatMap((s) => s.values).filter((v): v is number => v !== null && (!c.yLog || v > 0));
  let y0 = c.yMin ?? (c.yLog ? Math.min(...all) : Math.min(0, ...all));
  let y1 = Math.max(c.yMax ?? -Infinity, ...all);
  if (!all.length) { y0 = c.yLog ? 0.01 : 0; y1 = c.yLog ? 1 : 1; }
  if (c.yLog) { y0 = 10 ** Math.floor(Math.log10(Math.max(y0, 1e-6))); y1 = 10 ** Math.ceil(Math.log10(Math.max(y1, y0 * 10))); }
  if (y1 <= y0) y1 = y0 + 1;
  const px = (x: number) => L + (c.xLog ? (Math.log10(Math.max(x, x0)) - Math.log10(x0)) / (Math.log10(x1) - Math.log10(x0)) : (x - x0) / (x1 - x0 || 1)) * (W - L - R);
  const py = (y: number) => {
    const t = c.yLog ? (Math.log10(Math.max(y, y0)) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0)) : (y - y0) / (y1 - y0);
    return H - B - t * (H - T - B);
  };
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(c.title)}</text>`,
  ];
  for (const [a, b] of c.bands) parts.push(`<rect x="${f(px(a))}" y="${T}" width="${f(Math.max(1, px(b) - px(a)))}" height="${H - T - B}" fill="#f4c7a1" fill-opacity="0.45"/>`);
  const yt = c.yLog ? Array.from({ length: Math.round(Math.log10(y1 / y0)) + 1 }, (_, i) => y0 * 10 ** i) : ticks(y0, y1);
  for (const v of yt) parts.push(`<line x1="${L}" x2="${W - R}" y1="${f(py(v))}" y2="${f(py(v))}" stroke="#ddd"/><text x="${L - 6}" y="${f(py(v) + 4)}" text-anchor="end">${label(v)}</text>`);
  const xt = c.xLog ? Array.from({ length: Math.round(Math.log10(x1 / x0)) + 1 }, (_, i) => x0 * 10 ** i) : ticks(x0, x1, 8);
  for (const v of xt) parts.push(`<text x="${f(px(v))}" y="${H - B + 16}" text-anchor="middle">${label(v)}</text>`);
  parts.push(`<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#333"/><line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="#333"/>`);
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">${esc(c.xLabel)}</text>`);
  parts.push(`<text transform="translate(16 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`);
  const barW = xs.length > 1 ? Math.max(2, ((px(xs[1]!) - px(xs[0]!)) / Math.max(1, c.series.length)) * 0.8) : 8;
  c.series.forEach((s, si) => {
    if (s.style === 'line') {
      let d = '';
      s.values.forEach((v, i) => { d += v === null ? '' : `${d && s.values[i - 1] !== null ? 'L' : 'M'}${f(px(xs[i]!))} ${f(py(v))}`; });
      if (d) parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.5"/>`);
    } else if (s.style === 'marker') {
      s.values.forEach((v, i) => { if (v !== null) parts.push(`<circle cx="${f(px(xs[i]!))}" cy="${f(py(v))}" r="5" fill="none" stroke="${s.color}" stroke-width="2"/>`); });
    } else if (s.style === 'points') {
      s.values.forEach((v, i) => { if (v !== null) parts.push(`<circle cx="${f(px(xs[i]!))}" cy="${f(py(v))}" r="1.6" fill="${s.color}"/>`); });
    } else {
      s.values.forEach((v, i) => {
        if (v === null) return;
        const x = px(xs[i]!) - (barW * c.series.length) / 2 + si * barW; // centred on x
        parts.push(`<rect x="${f(x)}" y="${f(py(v))}" width="${f(barW)}" height="${f(Math.max(0, H - B - py(v)))}" fill="${s.color}"/>`);
      });
    }
    parts.push(`<rect x="${L + 10 + si * 150}" y="${T + 4}" width="10" height="10" fill="${s.color}"/><text x="${L + 24 + si * 150}" y="${T + 13}">${esc(s.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
