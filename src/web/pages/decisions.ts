/* Decisions: the live stream of the policy's decisions (`qos decisions --follow` in the
 * browser): the last 200 first, then each as it comes; pausable (what comes while paused is
 * kept, up to a bound, and counted) and filterable. */

import { apiLines } from '../api.js';
import { errorText, fmtDecision, fmtEndpoint, h, notice, type Decision, type Endpoint } from '../dom.js';
import { onEvent } from '../events.js';
import type { Page } from '../page.js';
import { DataTable, matches } from '../table.js';

/** decisions kept in the page */
const KEEP = 2000;
const RENDER_MS = 100;

interface DecisionRow {
  time: string; pid: number; fd: number; user: string; exe: string; event: string;
  family: string | null; local: Endpoint | null; remote: Endpoint | null; rule: string | null;
  decision: Decision | null; class: string; reply: string; cached: boolean; script?: string;
}

const page: Page = {
  id: 'decisions',
  title: 'Decisions',
  mount(root) {
    const kept: DecisionRow[] = [];
    let waiting: DecisionRow[] = [];
    let waitingDropped = 0;
    let paused = false;
    let filter = '';
    let seq = 0;
    const seqOf = new WeakMap<DecisionRow, number>();
    const table = new DataTable<DecisionRow>('decisions', [
      { title: 'Time', value: (d) => seqOf.get(d) ?? 0, render: (d) => d.time.slice(11, 23) },
      { title: 'Program', value: (d) => d.exe, render: (d) => h('a', { href: `#/flows?program=${encodeURIComponent(d.exe)}` }, d.exe) },
      { title: 'PID', value: (d) => d.pid, class: 'num' },
      { title: 'User', value: (d) => d.user },
      { title: 'Event', value: (d) => d.event },
      { title: 'Remote', value: (d) => fmtEndpoint(d.remote), class: 'addr' },
      { title: 'Rule', value: (d) => d.rule ?? '-' },
      { title: 'Decision', value: (d) => fmtDecision(d.decision) },
      { title: 'How', value: (d) => (d.cached ? 'cached' : d.script ? `script: ${d.script}` : 'rules') },
    ], { key: (d) => String(seqOf.get(d)), sortBy: 0, desc: true, maxRows: 500, empty: 'No decision yet.' });
    const status = h('span', { class: 'muted', role: 'status' });
    const pause = h('button', { type: 'button', dataset: { action: 'pause' }, onclick: () => toggle() }, 'Pause');
    const box = h('input', { type: 'search', placeholder: 'filter: program, user, event, rule…', 'aria-label': 'filter', oninput: (e: Event) => { filter = (e.target as HTMLInputElement).value; draw(); } });
    root.append(h('h1', null, 'Decisions'), h('div', { class: 'toolbar' }, box, pause, status), table.el);

    const add = (d: DecisionRow) => {
      seqOf.set(d, seq++);
      kept.push(d);
      if (kept.length > KEEP) kept.shift();
    };
    let timer: number | undefined;
    const draw = () => {
      if (timer !== undefined) { clearTimeout(timer); timer = undefined; }
      table.set(kept.filter((d) => matches(filter, d.exe, d.pid, d.user, d.event, fmtEndpoint(d.remote), d.rule, fmtDecision(d.decision), d.script)));
      status.textContent = paused ? `paused: ${waiting.length + waitingDropped} new` : `${kept.length} kept, newest first`;
    };
    const soon = () => { if (timer === undefined) timer = window.setTimeout(draw, RENDER_MS); };
    const toggle = () => {
      paused = !paused;
      pause.textContent = paused ? 'Resume' : 'Pause';
      pause.setAttribute('aria-pressed', String(paused));
      if (!paused) { for (const d of waiting) add(d); waiting = []; waitingDropped = 0; }
      draw();
    };
    const stops = [
      onEvent('decision', (d: DecisionRow) => {
        if (paused) { waiting.push(d); if (waiting.length > KEEP) { waiting.shift(); waitingDropped++; } } else add(d);
        soon();
      }),
      onEvent('dropped', (x: { dropped: number }) => { status.textContent = `${x.dropped} events dropped: the browser fell behind`; }),
    ];
    apiLines<DecisionRow>('/v1/decisions', { query: { limit: 200 } }).then((first) => {
      // those that came by the stream meanwhile are newer than the list
      const streamed = kept.splice(0);
      const id = (d: DecisionRow) => `${d.time} ${d.pid} ${d.fd} ${d.event}`;
      const listed = new Set(first.map(id));
      for (const d of first) add(d);
      for (const d of streamed) if (!listed.has(id(d))) add(d);
      draw();
      root.dataset.ready = '1';
    }, (e) => root.appendChild(notice('error', errorText(e))));
    return () => { for (const s of stops) s(); clearTimeout(timer); };
  },
};

export default page;
