/* Characterise: a capture file uploaded, or a live flow of the flow table captured for a while,
 * characterised by the daemon (POST /v1/characterize, /v1/characterize/live;
 * docs/characterize.md): each flow's statistics, the picked flow's least bucket b for each rate
 * r on logarithmic axes with its knee marked, and the suggested TSpec in the units
 * `qos characterize` prints (bytes and bytes per second, or packets with count). */

import { api, ApiError } from '../api.js';
import { Chart } from '../chart.js';
import { errorText, fill, fmtEndpoint, h, notice, type Endpoint } from '../dom.js';
import type { Page } from '../page.js';
import { DataTable } from '../table.js';
import { num } from '../../characterize/num.js';
import { notCounted, records, type CaptureSummary } from '../../capture/summary.js';
import './characterize.css';

interface Point { r_Bps: number; b_bytes: number }
interface FlowResult {
  key: string; packets: number; bytes: number; duration_s: number; mean_rate_Bps: number; peak_rate_Bps: number; M: number; m: number;
  curve: Point[]; knee: Point; tspec: { r: number; b: number; p: number; m: number; M: number }; minimum_policed_size: number;
}
interface Result {
  file: string; unit: 'bytes' | 'packets'; peak_window_s: number; flows: FlowResult[];
  /** what the file held beside its flows */
  capture: CaptureSummary;
  warnings: string[];
}

/** What the capture held besides the IP packets counted, as a sentence (empty when nothing). */
function skippedText(r: Result): string {
  const parts = notCounted(r.capture);
  if (!parts.length) return '';
  return ` Of its ${records(r.capture.records)}, ${parts.join('; ')}${r.warnings[0] ? ` (${r.warnings[0]})` : ''}.`;
}
interface LiveFlow { pid: number; fd: number; exe: string; user: string; proto: 'tcp' | 'udp' | null; type: string | null; local: Endpoint | null; remote: Endpoint | null }

/** the uploaded file's bound (the route's: src/characterize/api.ts MAX_CAPTURE) */
const MAX_CAPTURE = 64 * 2 ** 20;

/** The (r, b) curve on logarithmic axes, the knee as a marked point of its own series. */
function curveChart(box: HTMLElement, f: FlowResult, u: string): Chart {
  const pts = f.curve.filter((p) => p.r_Bps > 0 && p.b_bytes > 0);
  const knee = pts.map((p) => (p.r_Bps === f.knee.r_Bps && p.b_bytes === f.knee.b_bytes ? p.b_bytes : null));
  return new Chart(box, {
    height: 260,
    time: false,
    scales: { x: { time: false, distr: 3 }, y: { distr: 3 } },
    // a log axis leaves the ticks between decades unlabelled (null)
    axes: [{ label: `r (${u}/s)`, values: (_u, vals) => vals.map((v) => (v === null ? '' : num(v))) }, { label: `b (${u})`, values: (_u, vals) => vals.map((v) => (v === null ? '' : num(v))), size: 60 }],
    series: [
      { label: `b(r), ${u}`, stroke: '#2471a3', width: 2, value: (_u, v) => (v === null ? '-' : num(v)) },
      { label: 'knee', stroke: '#c0392b', fill: '#c0392b', width: 0, paths: () => null, points: { show: true, size: 12, stroke: '#c0392b', fill: '#c0392b' }, value: (_u, v) => (v === null ? '-' : num(v)) },
    ],
  }, [pts.map((p) => p.r_Bps), pts.map((p) => p.b_bytes), knee]);
}

const page: Page = {
  id: 'characterize',
  title: 'Characterise',
  mount(root) {
    let alive = true;
    let chart: Chart | null = null;
    let result: Result | null = null;
    let flowsKnown = false;
    const status = h('p', { class: 'muted', role: 'status', dataset: { role: 'status' } }, 'Upload a capture (pcap or pcapng), or pick a live flow.');
    const file = h('input', { type: 'file', accept: '.pcap,.pcapng,.cap', 'aria-label': 'capture file', dataset: { role: 'file' } });
    const flowSelect = h('select', { 'aria-label': 'live flow', dataset: { role: 'live-flow' } });
    const seconds = h('input', { type: 'number', min: '1', max: '60', value: '10', 'aria-label': 'seconds', dataset: { role: 'seconds' } });
    const capture = h('button', { type: 'button', class: 'primary', dataset: { role: 'capture' } }, 'Capture');
    const refresh = h('button', { type: 'button', dataset: { role: 'refresh' } }, 'Refresh the list');
    const summary = h('p', { class: 'muted', dataset: { role: 'summary' } });
    const detail = h('div', { class: 'char-detail' });
    let picked = 0;
    const table = new DataTable<FlowResult & { i: number }>('flows', [
      { title: 'Flow', value: (f) => f.key, class: 'addr' },
      { title: 'Packets', value: (f) => f.packets, class: 'num' },
      { title: 'Size', value: (f) => f.bytes, render: (f) => num(f.bytes), class: 'num' },
      { title: 'Seconds', value: (f) => f.duration_s, render: (f) => f.duration_s.toFixed(3), class: 'num' },
      { title: 'Mean /s', value: (f) => f.mean_rate_Bps, render: (f) => num(f.mean_rate_Bps), class: 'num' },
      { title: 'Peak /s', value: (f) => f.peak_rate_Bps, render: (f) => num(f.peak_rate_Bps), class: 'num' },
      { title: 'M', value: (f) => f.M, class: 'num' },
      { title: 'm', value: (f) => f.m, class: 'num' },
      { title: 'Knee r /s', value: (f) => f.knee.r_Bps, render: (f) => num(f.knee.r_Bps), class: 'num' },
      { title: 'Knee b', value: (f) => f.knee.b_bytes, render: (f) => num(f.knee.b_bytes), class: 'num' },
    ], { key: (f) => f.key, sortBy: 2, desc: true, rowClass: (f) => (f.i === picked ? 'picked' : 'pickable'), empty: 'No flow.' });
    const results = h('div', { class: 'char-results' }, summary, detail, table.el);
    results.hidden = true;

    const idle = (on: boolean) => {
      root.dataset.ready = on ? '1' : '0';
      file.disabled = !on;
      capture.disabled = !on || !flowsKnown;
    };
    const say = (text: string) => { status.className = 'muted'; status.textContent = text; };
    const sayError = (e: unknown) => { status.className = 'notice error'; status.textContent = errorText(e); };

    root.append(
      h('h1', null, 'Characterise traffic'),
      h('p', { class: 'muted' }, 'The token buckets a flow conforms to: for each rate r the least bucket b, the knee of the curve, and a suggested TSpec (qos characterize).'),
      h('div', { class: 'grid' },
        h('div', { class: 'panel' }, h('h2', null, 'A capture file'), h('div', { class: 'toolbar' }, file), h('p', { class: 'muted' }, 'pcap or pcapng, up to 64 MiB: tcpdump -w, or Wireshark.')),
        h('div', { class: 'panel' }, h('h2', null, 'A live flow'),
          h('div', { class: 'toolbar' }, flowSelect, refresh),
          h('div', { class: 'toolbar' }, h('label', null, 'for ', seconds, ' s'), capture))),
      status,
      results,
    );

    function pick(i: number): void {
      if (!result) return;
      picked = i;
      table.render();
      chart?.destroy();
      chart = null;
      const f = result.flows[i]!;
      const u = result.unit === 'bytes' ? 'B' : 'pkt';
      const unitOf = (field: string) => (field === 'r' || field === 'p' ? `${u}/s` : field === 'b' ? u : 'B');
      const box = h('div', { class: 'char-chart', dataset: { chart: 'curve' } });
      fill(detail,
        h('h2', null, h('code', null, f.key)),
        h('div', { class: 'grid' },
          h('div', { class: 'panel' },
            h('h2', null, 'Suggested TSpec'),
            h('dl', { class: 'tspec', dataset: { role: 'tspec' } }, (['r', 'b', 'p', 'm', 'M'] as const).flatMap((k) => [
              h('dt', null, k),
              h('dd', { dataset: { field: k, value: String(f.tspec[k]) } }, `${Math.round(f.tspec[k])} ${unitOf(k)}`),
            ])),
            h('p', { dataset: { role: 'knee', r: String(f.knee.r_Bps), b: String(f.knee.b_bytes) } }, `Knee: r ${num(f.knee.r_Bps)} ${u}/s, b ${num(f.knee.b_bytes)} ${u}. MinimumPolicedSize ${f.minimum_policed_size} B (the mean packet).`)),
          h('div', { class: 'panel' }, h('h2', null, 'Least bucket b for each rate r'), box)));
      chart = curveChart(box, f, u);
    }

    function show(r: Result): void {
      result = r;
      picked = 0;
      results.hidden = false;
      summary.textContent = `${r.file}: ${r.flows.length} flow${r.flows.length === 1 ? '' : 's'} in ${r.unit}, the peak rate over ${r.peak_window_s * 1000} ms.${skippedText(r)} The largest is shown; click another in the table below.`;
      table.set(r.flows.map((f, i) => ({ ...f, i })));
      if (r.flows.length) pick(0);
      results.scrollIntoView({ block: 'start' });
    }

    async function run(what: string, call: () => Promise<Result>): Promise<void> {
      idle(false);
      say(`Characterising ${what}…`);
      try {
        const r = await call();
        if (!alive) return;
        show(r);
        say(`Characterised ${what}.`);
      } catch (e) {
        if (alive) sayError(e);
      } finally {
        if (alive) idle(true);
      }
    }

    async function loadFlows(): Promise<void> {
      const flows = await api<LiveFlow[]>('/v1/flows');
      if (!alive) return;
      // a socket reported first at its connect has no type yet: the daemon checks it is TCP or UDP
      const usable = flows.filter((f) => f.type !== 'raw');
      flowsKnown = usable.length > 0;
      fill(flowSelect, flowsKnown
        ? usable.map((f) => h('option', { value: `${f.pid}/${f.fd}` }, `${f.exe} (pid ${f.pid}, fd ${f.fd}) ${f.proto ?? f.type ?? ''} ${fmtEndpoint(f.local) || '*'} → ${fmtEndpoint(f.remote) || '*'}`))
        : h('option', { value: '' }, 'no TCP or UDP flow known to the daemon'));
    }

    table.el.addEventListener('click', (e) => {
      const key = (e.target as HTMLElement).closest('tr[data-key]')?.getAttribute('data-key');
      const i = result?.flows.findIndex((f) => f.key === key) ?? -1;
      if (i >= 0) pick(i);
    });
    file.addEventListener('change', () => {
      const f = file.files?.[0];
      if (!f) return;
      if (f.size > MAX_CAPTURE) { sayError(new ApiError(413, 'QOS_ERR_TOO_LARGE', `${f.name} has ${f.size} bytes: the daemon takes captures of at most 64 MiB`)); return; }
      void run(f.name, () => api<Result>('/v1/characterize', { method: 'POST', raw: f, query: { name: f.name } }));
    });
    capture.addEventListener('click', () => {
      const [pid, fd] = flowSelect.value.split('/').map(Number);
      const s = Number(seconds.value);
      if (!Number.isInteger(s) || s < 1 || s > 60) { sayError(new Error('Seconds: a whole number from 1 to 60.')); return; }
      void run(`${flowSelect.selectedOptions[0]?.textContent ?? 'the flow'} for ${s} s`, () => api<Result>('/v1/characterize/live', { method: 'POST', body: { pid, fd, seconds: s } }));
    });
    refresh.addEventListener('click', () => { loadFlows().then(() => idle(root.dataset.ready === '1')).catch(sayError); });

    idle(false);
    loadFlows()
      .catch((e: unknown) => { if (alive) root.append(notice('error', `The flow list could not be read: ${errorText(e)}`)); })
      .finally(() => { if (alive) idle(true); });

    return () => {
      alive = false;
      chart?.destroy();
    };
  },
};

export default page;
