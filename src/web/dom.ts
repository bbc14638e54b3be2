/* Building the page: h() makes elements from data without HTML parsing (program names and
 * command lines come from other users: never innerHTML), and the formats every page shares. */

import { dscpName } from '../policy/dscp.js';

type Child = Node | string | number | null | undefined | false | Child[];
type Props = Record<string, unknown> & { class?: string; dataset?: Record<string, string> };

/** h('td', { class: 'num', onclick: fn, dataset: { key } }, 'text', child, [more]) */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props?: Props | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v as EventListener);
    else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'selected') (el as unknown as Record<string, unknown>)[k] = v;
    else el.setAttribute(k === 'class' ? 'class' : k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** Appends children (null, false and undefined skipped; arrays flattened). */
export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
  }
}

export function clear(el: Node): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

/** Replaces el's children. */
export function fill(el: Node, ...children: Child[]): void {
  clear(el);
  append(el, children);
}

export function fmtBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(n < 10 ? 1 : 0) : n} ${u[i]}`;
}

/** bits per second from bytes per second */
export function fmtRate(bytesPerS: number): string {
  const u = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s'];
  let n = bytesPerS * 8;
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(n < 10 && i ? 2 : n < 100 && i ? 1 : 0)} ${u[i]}`;
}

export function fmtAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export interface Endpoint { address: string; port: number }

export function fmtEndpoint(e: Endpoint | null | undefined): string {
  if (!e) return '';
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

export interface Decision { tos?: number; dscp?: number; priority?: number; deny?: string; override?: boolean; tc?: unknown; reserve?: unknown }

/** A decision as the CLI's qos flows shows it: "dscp EF prio 5", "deny EACCES", "-" */
export function fmtDecision(d: Decision | null | undefined): string {
  if (!d) return '-';
  const parts: string[] = [];
  if (d.deny) parts.push(`deny ${d.deny}`);
  if (d.dscp !== undefined) parts.push(`dscp ${dscpName(d.dscp)}`);
  if (d.tos !== undefined) parts.push(`tos ${d.tos}`);
  if (d.priority !== undefined) parts.push(`prio ${d.priority}`);
  if (d.tc) parts.push('tc');
  if (d.reserve) parts.push('reserve');
  return parts.join(' ') || '-';
}

/** A line of text for an error (an ApiError's problems included). */
export function errorText(e: unknown): string {
  const err = e as { message?: string; problems?: { line?: number; col?: number; message: string }[] };
  const probs = (err.problems ?? []).map((p) => (p.line ? `line ${p.line}, column ${p.col ?? 1}: ` : '') + p.message);
  return [err.message ?? String(e), ...probs].join('\n');
}

/** A status line a page shows while it loads or when a request fails. */
export function notice(kind: 'info' | 'error', text: string): HTMLElement {
  return h('p', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}
