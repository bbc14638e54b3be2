/* A table of rows that sorts by a column when its header is clicked and shows at most maxRows
 * (the rest counted below it), with optional rows kept under them whatever the order (a sum, the
 * rest: setFoot): the flows, decisions, rules and applications pages use it. Tests find it by
 * `data-table` and its rows by `data-key`. */

import { h } from './dom.js';

export interface Column<T> {
  title: string;
  /** what it sorts by (and shows, without render) */
  value(row: T): string | number;
  render?(row: T): Node | string;
  class?: string;
}

export class DataTable<T> {
  readonly el: HTMLElement;
  private readonly table: HTMLTableElement;
  private readonly body: HTMLTableSectionElement;
  private readonly tfoot: HTMLTableSectionElement;
  private readonly foot: HTMLElement;
  private readonly heads: HTMLTableCellElement[];
  private sortBy: number;
  private desc: boolean;
  private rows: T[] = [];

  constructor(
    name: string,
    private readonly columns: Column<T>[],
    private readonly o: {
      key(row: T): string; maxRows?: number; sortBy?: number; desc?: boolean; rowClass?(row: T): string; empty?: string;
      /** a click on a row (not on a link or control in it), or Enter on it */
      onRow?(row: T): void;
    },
  ) {
    this.sortBy = o.sortBy ?? 0;
    this.desc = o.desc ?? false;
    this.heads = columns.map((c, i) => h('th', { class: c.class, scope: 'col', onclick: () => this.sort(i), title: 'sort' }, c.title));
    this.body = h('tbody');
    this.tfoot = h('tfoot');
    this.table = h('table', { dataset: { table: name } }, h('thead', null, h('tr', null, this.heads)), this.body, this.tfoot);
    this.foot = h('p', { class: 'muted' });
    this.el = h('div', { class: 'table-wrap' }, this.table, this.foot);
  }

  private sort(i: number): void {
    if (this.sortBy === i) this.desc = !this.desc;
    else { this.sortBy = i; this.desc = false; }
    this.render();
  }

  set(rows: T[]): void {
    this.rows = rows;
    this.render();
  }

  /** Rows shown under the sorted ones, in the order given (a total, the rows not listed). */
  setFoot(rows: T[]): void {
    this.tfoot.replaceChildren(...rows.map((r) => this.row(r, false)));
  }

  /** A row; a body row (clickable) calls onRow on a click or Enter, if the table has one. */
  private row(r: T, clickable: boolean): HTMLTableRowElement {
    const on = clickable ? this.o.onRow : undefined;
    const pick = on ? (e: Event) => { if (!(e.target as Element).closest('a, button, input') && (e.type === 'click' || (e as KeyboardEvent).key === 'Enter')) on(r); } : null;
    return h('tr', { dataset: { key: this.o.key(r) }, class: [this.o.rowClass?.(r), on ? 'clickable' : ''].filter(Boolean).join(' ') || undefined, ...(pick ? { tabindex: '0', onclick: pick, onkeydown: pick } : {}) },
      this.columns.map((c) => h('td', { class: c.class, dataset: { label: c.title } }, c.render ? c.render(r) : String(c.value(r)))));
  }

  render(): void {
    const col = this.columns[this.sortBy]!;
    const sign = this.desc ? -1 : 1;
    const rows = [...this.rows].sort((a, b) => {
      const x = col.value(a); const y = col.value(b);
      return sign * (typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y)));
    });
    const max = this.o.maxRows ?? 500;
    const shown = rows.slice(0, max);
    this.body.replaceChildren(...shown.map((r) => this.row(r, true)));
    this.heads.forEach((th, i) => { th.dataset.sort = i === this.sortBy ? (this.desc ? 'desc' : 'asc') : ''; });
    this.foot.textContent = rows.length > max ? `${rows.length - max} more not shown: narrow the filter` : rows.length === 0 ? (this.o.empty ?? 'None.') : '';
  }
}

/** Lowercase words a filter box matches against a row's text: every word must be in it. */
export function matches(filter: string, ...fields: unknown[]): boolean {
  const words = filter.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return true;
  const text = fields.map((f) => (f === null || f === undefined ? '' : String(f))).join(' ').toLowerCase();
  return words.every((w) => text.includes(w));
}
