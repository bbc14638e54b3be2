/* Metrics: the daemon's last hour as four charts (decisions/s; request latency p50 and p99;
 * script calls and faults/s; packets/s per DSCP class, one series per class seen), from
 * GET /v1/metrics/history (src/daemon/metrics-history.ts, docs/dashboard.md). Asked again
 * when the next sample is due, `since` the last one, and appended; each chart reads its
 * latest figures beside its title. A fresh daemon (one sample or none) says when the first
 * comes. */

import { api } from '../api.js';
import { Chart, type uPlot } from '../chart.js';
import { errorText, h, notice } from '../dom.js';
import type { Page } from '../page.js';
import './metrics.css';
import type { HistoryAnswer, HistorySample } from '../../daemon/history-sample.js';

type Sample = HistorySample;
type History = HistoryAnswer;

/** the samples the daemon keeps (an hour at its default interval): the page keeps as many */
const KEEP = 360;

/** One series of a chart: its label, key (data-series), colour and value in a sample. */
interface Line { key: string; label: string; color: string; value(s: Sample): number | null }

const COLORS = ['#0b62c4', '#d9480f', '#2b8a3e', '#862e9c', '#c2255c', '#1098ad', '#e67700', '#5c940d', '#364fc7', '#a61e4d'];
/** a DSCP class's colour, the same for a class every time it is drawn */
const CLASS_COLORS: Record<string, string> = { cs0: '#868e96', ef: '#d9480f', af41: '#0b62c4', af31: '#2b8a3e', af21: '#862e9c', af11: '#1098ad', cs1: '#5c940d', cs6: '#c2255c' };

interface ChartSpec {
  id: 'decisions' | 'latency' | 'scripts' | 'dscp'; title: string; unit: string; lines(classes: string[]): Line[];
  /** a dot at every sample: a series often unknown (latency: no request in the interval) has
   * figures between gaps, which a line alone does not show */
  dots?: boolean;
}

const SPECS: ChartSpec[] = [
  { id: 'decisions', title: 'Decisions', unit: '/s', lines: () => [{ key: 'decisions_per_s', label: 'decisions/s', color: COLORS[0]!, value: (s) => s.decisions_per_s }] },
  {
    id: 'latency', title: 'Decision latency', unit: 'µs', dots: true, lines: () => [
      { key: 'latency_p50_us', label: 'p50 µs', color: COLORS[0]!, value: (s) => s.latency_p50_us },
      { key: 'latency_p99_us', label: 'p99 µs', color: COLORS[1]!, value: (s) => s.latency_p99_us },
    ],
  },
  {
    id: 'scripts', title: 'Script calls', unit: '/s', lines: () => [
      { key: 'script_calls_per_s', label: 'calls/s', color: COLORS[0]!, value: (s) => s.script_calls_per_s },
      { key: 'script_faults_per_s', label: 'faults/s', color: COLORS[1]!, value: (s) => s.script_faults_per_s },
    ],
  },
  {
    id: 'dscp', title: 'Packets per DSCP class', unit: 'packets/s', lines: (classes) => classes.map((c, i) => ({
      key: c, label: c.toUpperCase(), color: CLASS_COLORS[c] ?? COLORS[(i + 2) % COLORS.length]!, value: (s: Sample) => s.dscp?.[c]?.packets_per_s ?? null,
    })),
  },
];

/** A figure as people read it: a few significant digits. */
function fmt(v: number | null): string {
  if (v === null) return '–';
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
}

interface Card { spec: ChartSpec; el: HTMLElement; plotBox: HTMLElement; readout: HTMLElement; chart: Chart | null; lines: Line[] }

const page: Page = {
  id: 'metrics',
  title: 'Metrics',
  mount(root) {
    const samples: Sample[] = [];
    let intervalS = 10;
    let stopped = false;
    let timer: number | undefined;
    const status = h('p', { class: 'notice info', role: 'status', dataset: { state: 'loading' } }, 'Loading the metrics history…');
    const failure = h('div');
    const cards: Card[] = SPECS.map((spec) => {
      const readout = h('div', { class: 'readout' });
      const plotBox = h('div', { class: 'plot', dataset: { chart: spec.id } });
      const el = h('section', { class: 'panel metric-card', dataset: { card: spec.id } }, h('h2', null, spec.title, ' ', h('span', { class: 'muted' }, spec.unit)), readout, plotBox);
      return { spec, el, plotBox, readout, chart: null, lines: [] };
    });
    root.append(h('h1', null, 'Metrics'), status, failure, h('div', { class: 'metric-grid' }, ...cards.map((c) => c.el)));

    /** every DSCP class the samples name, by how many packets it carried (most first) */
    const classes = (): string[] => {
      const total = new Map<string, number>();
      for (const s of samples) for (const [c, r] of Object.entries(s.dscp ?? {})) total.set(c, (total.get(c) ?? 0) + r.packets_per_s);
      return [...total].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([c]) => c);
    };
    /** the x axis: the span the daemon keeps (an hour at its default interval), up to the last sample */
    const xRange = (): [number, number] => {
      const end = samples.length ? Date.parse(samples[samples.length - 1]!.t) / 1000 : Date.now() / 1000;
      return [end - KEEP * intervalS, end];
    };

    const draw = (): void => {
      const xs = samples.map((s) => Date.parse(s.t) / 1000);
      const seen = classes();
      const last = samples[samples.length - 1];
      for (const c of cards) {
        const lines = c.spec.lines(seen);
        const data: uPlot.AlignedData = [xs, ...lines.map((l) => samples.map((s) => l.value(s)))];
        const same = c.chart && lines.length === c.lines.length && lines.every((l, i) => l.key === c.lines[i]!.key);
        if (c.chart && same) c.chart.setData(data);
        else {
          c.chart?.destroy();
          c.plotBox.replaceChildren();
          c.chart = new Chart(c.plotBox, {
            height: 200,
            // (uPlot's own points: shown where samples are far enough apart, so a figure
            // between two unknown ones is still seen)
            series: lines.map((l) => ({ label: l.label, stroke: l.color, width: 1.5, ...(c.spec.dots ? { points: { show: true, size: 5, fill: l.color } } : {}) })),
            scales: { x: { time: true, range: () => xRange() }, y: { range: (_u, lo, hi) => [Math.min(0, lo ?? 0), hi !== null && hi > 0 ? hi * 1.1 : 1] } },
            axes: [{}, { size: 56 }],
          }, data);
          c.lines = lines;
        }
        c.el.dataset.t = last?.t ?? '';
        c.readout.replaceChildren(...(lines.length && last
          ? lines.map((l) => {
            const v = l.value(last);
            return h('span', { class: 'value', dataset: { series: l.key, value: v === null ? 'null' : String(v) } }, h('i', { class: 'swatch', dataset: { color: l.color } }), `${l.label} ${fmt(v)}`);
          })
          : [h('span', { class: 'muted' }, c.spec.id === 'dscp' && last && last.dscp === null ? 'no kernel counters (kernel rules off, or nftables unusable)' : 'no sample yet')]));
        for (const sw of c.readout.querySelectorAll<HTMLElement>('i.swatch')) sw.style.background = sw.dataset.color ?? '';
      }
    };

    /** when the daemon's next sample is due (performance.now()), and the ticker of the countdown */
    let dueAt = 0;
    let ticker: number | undefined;
    const countdown = (): void => {
      const inS = Math.max(1, Math.ceil((dueAt - performance.now()) / 1000));
      status.textContent = `collecting: first sample in ${inS} s`;
    };
    const showStatus = (res: History): void => {
      const inS = Math.max(1, Math.ceil(res.next_sample_in_s));
      dueAt = performance.now() + res.next_sample_in_s * 1000;
      if (samples.length <= 1) {
        status.dataset.state = 'collecting';
        countdown();
        ticker ??= window.setInterval(countdown, 1000);
      } else {
        if (ticker !== undefined) { clearInterval(ticker); ticker = undefined; }
        status.dataset.state = 'live';
        const last = samples[samples.length - 1]!;
        status.textContent = `${samples.length} samples, one every ${res.interval_s} s; the last at ${new Date(last.t).toLocaleTimeString()}, the next in ${inS} s`;
      }
    };

    const load = async (): Promise<void> => {
      timer = undefined;
      let wait = intervalS * 1000;
      try {
        const since = samples[samples.length - 1]?.t;
        const res = await api<History>('/v1/metrics/history', since ? { query: { since } } : {});
        if (stopped) return;
        intervalS = res.interval_s;
        for (const s of res.samples) if (!samples.length || Date.parse(s.t) > Date.parse(samples[samples.length - 1]!.t)) samples.push(s);
        if (samples.length > KEEP) samples.splice(0, samples.length - KEEP);
        failure.replaceChildren();
        draw();
        showStatus(res);
        // just after the next sample is due
        wait = Math.max(100, res.next_sample_in_s * 1000 + Math.min(500, intervalS * 250));
      } catch (e) {
        if (stopped) return;
        failure.replaceChildren(notice('error', `The metrics history could not be read: ${errorText(e)}`));
      } finally {
        if (!stopped) {
          root.dataset.ready = '1';
          timer = window.setTimeout(() => void load(), wait);
        }
      }
    };
    void load();

    return () => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      if (ticker !== undefined) clearInterval(ticker);
      for (const c of cards) c.chart?.destroy();
    };
  },
};

export default page;
