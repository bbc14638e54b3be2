/* Flows: the sockets the daemon knows (GET /v1/flows), kept live by the event stream (open,
 * decided, closed; each decision's event name from `decision`), filterable and sortable. A
 * closed flow stays a minute, marked closed, so a short program's connection can be seen. A
 * program's name leads to its view: #/flows?program=EXE, its flows and its decisions. A click
 * on a flow opens why it has its mark (POST /v1/explain, ../explain-panel.ts). */

import { api, apiLines } from '../api.js';
import { explainPanel } from '../explain-panel.js';
import { append, errorText, fmtAge, fmtDecision, fmtEndpoint, h, notice, type Decision, type Endpoint } from '../dom.js';
import { onEvent } from '../events.js';
import type { Page } from '../page.js';
import { DataTable, matches } from '../table.js';

/** how long a closed flow stays in the table */
const KEEP_CLOSED_MS = 60_000;
/** closed flows kept at most (a program opening thousands of sockets a second) */
const MAX_CLOSED = 500;
/** the table is drawn at most this often while events arrive */
const RENDER_MS = 100;

interface FlowRow {
  key: string;
  program: string;
  pid: number;
  fd: number;
  user: string;
  proto: string;
  local: Endpoint | null;
  remote: Endpoint | null;
  rule: string | null;
  decision: Decision | null;
  cls: string;
  created: number;
  event: string;
  closed?: number;
  why?: string;
  /** which part decided: the agent, or the eBPF programs (docs/ebpf.md) */
  path: string;
}

/** GET /v1/flows gives the table's own fields (exe, times in ms); the event stream the
 * dashboard's (program, ISO times) */
interface WireFlow {
  exe?: string; program?: string; pid: number; fd: number; user: string;
  proto: string | null; type?: string | null; local: Endpoint | null; remote: Endpoint | null;
  rule: string | null; decision: Decision | null; class: string; created: number | string; why?: string;
  /** an eBPF-decided socket: no descriptor, its cookie instead, and the call that was decided */
  path?: string; cookie?: string; event?: string;
}

interface DecisionRow { time: string; pid: number; fd: number; user: string; exe: string; event: string; remote: Endpoint | null; rule: string | null; decision: Decision | null; cached?: boolean; script?: string }

const keyOf = (pid: number, fd: number) => `${pid}:${fd}`;
/** a flow's key: its process and descriptor, or an eBPF-decided socket's cookie */
const flowKey = (w: WireFlow) => (w.cookie !== undefined ? `ebpf:${w.cookie}` : keyOf(w.pid, w.fd));

function rowOf(w: WireFlow, event: string): FlowRow {
  return {
    key: flowKey(w), path: w.path ?? 'agent', program: w.program ?? w.exe ?? '?', pid: w.pid, fd: w.fd, user: w.user,
    proto: w.proto ?? w.type ?? '', local: w.local, remote: w.remote, rule: w.rule, decision: w.decision, cls: w.class,
    created: typeof w.created === 'number' ? w.created : Date.parse(w.created), event,
  };
}

const page: Page = {
  id: 'flows',
  title: 'Flows',
  mount(root, ctx) {
    const program = ctx.params.get('program');
    const rows = new Map<string, FlowRow>();
    /** the last call of each socket, from the decisions (a flow does not keep it) */
    const lastEvent = new Map<string, string>();
    const closed: string[] = [];
    let filter = '';
    const status = h('p', { class: 'muted', role: 'status' }, 'Loading…');
    const progLink = (r: { program?: string; exe?: string }) => {
      const exe = r.program ?? r.exe ?? '';
      return h('a', { href: `#/flows?program=${encodeURIComponent(exe)}`, title: 'this program\'s flows and decisions' }, exe);
    };
    const table = new DataTable<FlowRow>('flows', [
      { title: 'Program', value: (r) => r.program, render: progLink },
      { title: 'PID', value: (r) => r.pid, class: 'num' },
      { title: 'User', value: (r) => r.user },
      { title: 'Proto', value: (r) => r.proto },
      { title: 'Local', value: (r) => fmtEndpoint(r.local), class: 'addr' },
      { title: 'Remote', value: (r) => fmtEndpoint(r.remote), class: 'addr' },
      { title: 'Event', value: (r) => (r.closed ? `closed${r.why ? ` (${r.why})` : ''}` : r.path === 'ebpf' ? `${r.event} (eBPF)` : r.event) },
      { title: 'Rule', value: (r) => r.rule ?? '-' },
      { title: 'Decision', value: (r) => fmtDecision(r.decision) },
      { title: 'Age', value: (r) => Date.now() - r.created, render: (r) => fmtAge(Date.now() - r.created), class: 'num' },
    ], {
      key: (r) => r.key, sortBy: 9, rowClass: (r) => [r.closed ? 'closed' : '', r.key === selected ? 'selected' : ''].filter(Boolean).join(' '),
      empty: program ? 'This program has no flow now.' : 'No flow: start a program under `qos run`.',
      onRow: (r) => {
        selected = r.key;
        draw();
        // the agent's flow by its descriptor; an eBPF-decided socket by its remote end
        const target = r.path === 'ebpf' ? { pid: r.pid, ...(r.proto === 'tcp' || r.proto === 'udp' ? { proto: r.proto } : {}), ...(r.remote ? { remote: fmtEndpoint(r.remote) } : {}) } : { pid: r.pid, fd: r.fd };
        void explain.show(target, `${r.program} (pid ${r.pid}${r.path === 'ebpf' ? '' : `, fd ${r.fd}`}${r.remote ? ` to ${fmtEndpoint(r.remote)}` : ''})`);
      },
    });
    /** the flow whose explanation is shown */
    let selected: string | null = null;
    const explain = explainPanel();

    const decisions = program ? new DataTable<DecisionRow>('program-decisions', [
      { title: 'Time', value: (d) => d.time, render: (d) => d.time.slice(11, 23) },
      { title: 'PID', value: (d) => d.pid, class: 'num' },
      { title: 'Event', value: (d) => d.event },
      { title: 'Remote', value: (d) => fmtEndpoint(d.remote), class: 'addr' },
      { title: 'Rule', value: (d) => d.rule ?? '-' },
      { title: 'Decision', value: (d) => fmtDecision(d.decision) },
    ], { key: (d) => `${d.time}:${d.pid}:${d.fd}:${d.event}`, sortBy: 0, desc: true, maxRows: 200, empty: 'No decision for this program among the last 1,000.' }) : null;
    const programDecisions: DecisionRow[] = [];

    const box = h('input', { type: 'search', placeholder: 'filter: program, user, address, rule…', 'aria-label': 'filter', oninput: (e: Event) => { filter = (e.target as HTMLInputElement).value; draw(); } });
    append(root, [
      h('h1', null, program ? ['Flows of ', h('code', null, program)] : 'Flows'),
      program ? h('p', null, h('a', { href: '#/flows' }, '← all flows')) : null,
      h('div', { class: 'toolbar' }, box, status),
      explain.el,
      table.el,
      decisions ? [h('h2', null, 'Its decisions'), decisions.el] : null,
    ]);

    let timer: number | undefined;
    const draw = () => {
      if (timer !== undefined) { clearTimeout(timer); timer = undefined; }
      const now = Date.now();
      while (closed.length && (closed.length > MAX_CLOSED || now - (rows.get(closed[0]!)?.closed ?? 0) > KEEP_CLOSED_MS)) {
        const k = closed.shift()!;
        if (rows.get(k)?.closed) rows.delete(k);
      }
      const list = [...rows.values()].filter((r) => (!program || r.program === program) && matches(filter, r.program, r.pid, r.user, r.proto, fmtEndpoint(r.local), fmtEndpoint(r.remote), r.rule, fmtDecision(r.decision), r.event));
      table.set(list);
      const open = list.filter((r) => !r.closed).length;
      status.textContent = `${open} open, ${list.length - open} closed in the last minute`;
      if (decisions) decisions.set(programDecisions);
    };
    const soon = () => { if (timer === undefined) timer = window.setTimeout(draw, RENDER_MS); };

    const stops = [
      onEvent('open', (w: WireFlow) => { const r = rowOf(w, lastEvent.get(keyOf(w.pid, w.fd)) ?? 'socket'); rows.set(r.key, r); soon(); }),
      onEvent('decided', (w: WireFlow) => {
        const k = keyOf(w.pid, w.fd);
        const r = rowOf(w, lastEvent.get(k) ?? rows.get(k)?.event ?? '');
        rows.set(k, r);
        soon();
      }),
      onEvent('closed', (w: WireFlow) => {
        const r = rows.get(keyOf(w.pid, w.fd));
        if (!r || r.closed) return;
        r.closed = Date.now();
        if (w.why) r.why = w.why;
        closed.push(r.key);
        soon();
      }),
      onEvent('decision', (d: DecisionRow) => {
        const k = keyOf(d.pid, d.fd);
        lastEvent.set(k, d.event);
        if (lastEvent.size > 20_000) lastEvent.delete(lastEvent.keys().next().value!);
        const r = rows.get(k);
        if (r && !r.closed) r.event = d.event;
        if (program && d.exe === program) { programDecisions.push(d); if (programDecisions.length > 1000) programDecisions.shift(); }
        soon();
      }),
      onEvent('dropped', () => void load()),
    ];
    const ages = window.setInterval(draw, 1000);

    // The stream is opened above, before the list is read: nothing between the two is lost.
    const load = async () => {
      try {
        const [flows, recent] = await Promise.all([api<WireFlow[]>('/v1/flows'), apiLines<DecisionRow>('/v1/decisions', { query: { limit: 1000 } })]);
        for (const d of recent) lastEvent.set(keyOf(d.pid, d.fd), d.event);
        if (program) programDecisions.splice(0, programDecisions.length, ...recent.filter((d) => d.exe === program));
        for (const w of flows) {
          const k = flowKey(w);
          if (!rows.get(k)?.closed) rows.set(k, rowOf(w, lastEvent.get(k) ?? w.event ?? ''));
        }
        // a flow the list no longer has closed while the stream was behind
        const live = new Set(flows.map(flowKey));
        for (const r of rows.values()) if (!r.closed && !live.has(r.key)) { r.closed = Date.now(); closed.push(r.key); }
        draw();
        root.dataset.ready = '1';
      } catch (e) {
        status.replaceWith(notice('error', errorText(e)));
      }
    };
    void load();
    return () => { for (const s of stops) s(); clearInterval(ages); clearTimeout(timer); };
  },
};

export default page;
