/* Applications: what each program (or user, unit, DSCP class) sends and receives, as the
 * daemon's eBPF programs count it in the kernel (GET /v1/apps, src/ebpf/apps.ts), read every
 * 2 s: a table like nethogs', the busiest now first, with the rest ("other") and the total
 * under it. Listed when the daemon has its eBPF programs attached; reached by its route
 * without them, it says why there is nothing (the route's error). #/apps?by=user&n=50 opens
 * it on a dimension and a number of rows. */

import { ApiError, apps, type AppCounts, type AppRow, type AppsAnswer, type AppsBy } from '../api.js';
import { errorText, fill, fmtAge, fmtBytes, fmtRate, h, notice } from '../dom.js';
import type { Page } from '../page.js';
import { poll } from '../poll.js';
import { DataTable, type Column } from '../table.js';
import './apps.css';

const REFRESH_MS = 2000;
/** rows asked for by default (the API's own bound is 4,096) */
const DEFAULT_N = 500;
const MAX_N = 4096;

const DIMENSIONS: { by: AppsBy; label: string; column: string }[] = [
  { by: 'program', label: 'program', column: 'Program' },
  { by: 'user', label: 'user', column: 'User' },
  { by: 'unit', label: 'unit (cgroup)', column: 'Unit' },
  { by: 'class', label: 'DSCP class', column: 'Class' },
];

/** A line of the table: a row of the answer, or the rest (`other`) or the total under them,
 * which have no rate of their own from the daemon (the total's is the page's: its bytes
 * between two reads). */
interface Line extends AppCounts {
  key: string; name: string; pid?: number; users?: string[];
  tx_bps: number | null; rx_bps: number | null;
  /** ms without traffic, by the daemon's clock (null: not known) */
  idle: number | null;
  kind: 'row' | 'other' | 'total';
}

/** A figure shown for people, its exact value in data-value (tests read it). */
const figure = (v: number | null, text: (v: number) => string) => (v === null ? '–' : h('span', { dataset: { value: String(v) } }, text(v)));
const rate = (l: Line) => (l.tx_bps === null || l.rx_bps === null ? null : l.tx_bps + l.rx_bps);

function columns(by: AppsBy): Column<Line>[] {
  const name = DIMENSIONS.find((d) => d.by === by)!.column;
  return [
    { title: name, value: (l) => l.name, class: 'apps-name' },
    ...(by === 'program' ? [
      { title: 'PID', value: (l: Line) => l.pid ?? '', class: 'num' },
      { title: 'Users', value: (l: Line) => (l.users ?? []).join(', ') },
    ] : []),
    { title: 'Rate', value: (l) => rate(l) ?? -1, render: (l) => figure(rate(l), fmtRate), class: 'num' },
    { title: 'Sending', value: (l) => l.tx_bps ?? -1, render: (l) => figure(l.tx_bps, fmtRate), class: 'num' },
    { title: 'Receiving', value: (l) => l.rx_bps ?? -1, render: (l) => figure(l.rx_bps, fmtRate), class: 'num' },
    { title: 'Sent', value: (l) => l.tx_bytes, render: (l) => figure(l.tx_bytes, fmtBytes), class: 'num' },
    { title: 'Received', value: (l) => l.rx_bytes, render: (l) => figure(l.rx_bytes, fmtBytes), class: 'num' },
    { title: 'Last active', value: (l) => l.idle ?? Infinity, render: (l) => (l.idle === null ? '' : l.idle < 1000 ? 'now' : `${fmtAge(l.idle)} ago`), class: 'num' },
  ];
}

const lineOf = (r: AppRow, at: number): Line => ({
  key: r.key, name: r.name, pid: r.pid, users: r.users, tx_bytes: r.tx_bytes, rx_bytes: r.rx_bytes, tx_packets: r.tx_packets, rx_packets: r.rx_packets,
  tx_bps: r.tx_bps, rx_bps: r.rx_bps, idle: Math.max(0, at - r.last_active), kind: 'row',
});

function param<T>(v: string | null, ok: (v: string) => T | null, dflt: T): T {
  return v === null ? dflt : ok(v) ?? dflt;
}

const page: Page = {
  id: 'apps',
  title: 'Applications',
  available: (status) => (status.ebpf as { attached?: boolean } | undefined)?.attached === true,
  mount(root, ctx) {
    let alive = true;
    let by = param<AppsBy>(ctx.params.get('by'), (v) => DIMENSIONS.find((d) => d.by === v)?.by ?? null, 'program');
    const n = param(ctx.params.get('n'), (v) => (/^\d+$/.test(v) && +v >= 1 && +v <= MAX_N ? +v : null), DEFAULT_N);
    /** the last total read, for the total's rate */
    let last: { at: number; total: AppCounts; tx_bps: number | null; rx_bps: number | null } | null = null;

    const tables = new Map<AppsBy, DataTable<Line>>();
    const tableOf = (b: AppsBy): DataTable<Line> => {
      let t = tables.get(b);
      if (!t) {
        const cols = columns(b);
        t = new DataTable<Line>('apps', cols, {
          key: (l) => (l.kind === 'row' ? l.key : l.kind), maxRows: n, sortBy: cols.findIndex((c) => c.title === 'Rate'), desc: true,
          rowClass: (l) => (l.kind === 'row' ? '' : `apps-${l.kind}`),
          empty: 'Nothing counted yet: no socket of the programs under the eBPF programs\' cgroup has sent or received a packet.',
        });
        tables.set(b, t);
      }
      return t;
    };

    const status = h('p', { class: 'muted', role: 'status', dataset: { role: 'status' } }, 'Loading…');
    const failure = h('div');
    const holder = h('div', { class: 'apps-table' });
    const select = h('select', { 'aria-label': 'by', dataset: { role: 'by' }, onchange: () => {
      by = select.value as AppsBy;
      holder.replaceChildren();
      status.textContent = 'Loading…';
      restart();
    } }, DIMENSIONS.map((d) => h('option', { value: d.by, selected: d.by === by }, d.label)));
    root.append(
      h('h1', null, 'Applications'),
      h('p', { class: 'muted' }, 'What each program\'s sockets send and receive, counted in the kernel by the daemon\'s eBPF programs (IP headers included), read every 2 s; the busiest now first. Rates are over the daemon\'s last read of its counters.'),
      h('div', { class: 'toolbar' }, h('label', null, 'By ', select), status),
      failure,
      holder,
    );

    /** Draws an answer in its dimension's table. */
    function show(a: AppsAnswer): void {
      const t = tableOf(a.by);
      if (holder.firstChild !== t.el) holder.replaceChildren(t.el);
      holder.dataset.by = a.by;
      const at = Date.parse(a.at);
      t.set(a.rows.map((r) => lineOf(r, at)));
      // the total's rate: its bytes since the last read that the daemon made afresh
      if (last && at > last.at) {
        const dt = (at - last.at) / 1000;
        last = { at, total: a.total, tx_bps: (a.total.tx_bytes - last.total.tx_bytes) / dt, rx_bps: (a.total.rx_bytes - last.total.rx_bytes) / dt };
      } else if (!last) last = { at, total: a.total, tx_bps: null, rx_bps: null };
      t.setFoot([
        ...(a.other ? [{ key: 'other', name: 'other (not listed)', ...a.other, tx_bps: null, rx_bps: null, idle: null, kind: 'other' as const }] : []),
        { key: 'total', name: 'total', ...a.total, tx_bps: last.tx_bps, rx_bps: last.rx_bps, idle: null, kind: 'total' },
      ]);
    }

    async function read(): Promise<void> {
      const a = await apps(by, n);
      if (!alive || a.by !== by) return; // the dimension changed while it was read: the next read has it
      failure.replaceChildren();
      holder.hidden = false;
      show(a);
      const what = DIMENSIONS.find((d) => d.by === by)!.label;
      status.textContent = `${a.rows.length} of ${a.tracked} by ${what}${a.other ? ', the rest as other' : ''}; read at ${new Date(a.at).toLocaleTimeString()}.`;
      root.dataset.ready = '1';
    }

    let reads = poll(read, REFRESH_MS, fail);
    /** reads again from now (a read under way for another dimension is not shown) */
    function restart(): void {
      failure.replaceChildren();
      reads.stop();
      reads = poll(read, REFRESH_MS, fail);
    }
    function fail(e: unknown): void {
      if (!alive) return;
      status.textContent = '';
      // without the eBPF programs nothing changes until the daemon starts again: say why and
      // read again only when asked
      const lacking = e instanceof ApiError && e.code === 'QOS_ERR_ENVIRONMENT';
      if (lacking) {
        reads.stop();
        holder.hidden = true;
      }
      fill(failure, notice('error', lacking ? errorText(e) : `The statistics could not be read: ${errorText(e)}`), lacking
        && h('p', { class: 'muted' }, 'Start the daemon with --ebpf on (or auto, on a kernel that takes the programs; docs/ebpf.md): qos doctor says what this host lacks. ',
          h('button', { type: 'button', dataset: { action: 'retry' }, onclick: restart }, 'Try again')));
      root.dataset.ready = '1';
    }

    return () => {
      alive = false;
      reads.stop();
    };
  },
};

export default page;
