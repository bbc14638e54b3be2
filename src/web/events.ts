/* The daemon's server-sent events (GET /api/events, docs/dashboard.md "The event stream"): one
 * stream for the whole app, opened when the first listener comes, closed when the last goes
 * (the daemon follows flows and decisions only while a stream is open).
 *
 * Read with fetch() and a stream reader, not EventSource: a headless Chromium asked for a page's
 * DOM after a virtual time budget (`chromium --headless --dump-dom --virtual-time-budget=5000`)
 * waits for every pending EventSource forever, and never for a fetch body being read (measured:
 * an EventSource page never returned in 40 s; the same page reading the stream by fetch returned
 * in 2 s with its events applied). It also lets the CSRF token go in a header. After the stream
 * ends or fails it is opened again 2 s later, and listeners get a `dropped` event (with
 * `reconnected: true`): what happened meanwhile was not seen, so pages read their lists again. */

import { csrfToken } from './api.js';

export type EventName = 'open' | 'decided' | 'closed' | 'reservation' | 'decision' | 'dropped';
export type StreamState = 'connecting' | 'live' | 'down';

type Listener = (data: any) => void; // eslint-disable-line @typescript-eslint/no-explicit-any

const RETRY_MS = 2000;
const listeners = new Map<string, Set<Listener>>();
const stateListeners = new Set<(s: StreamState) => void>();
let abort: AbortController | null = null;
let retry: number | undefined;
let state: StreamState = 'down';

function setState(s: StreamState): void {
  state = s;
  for (const f of stateListeners) f(s);
}

function dispatch(name: string, data: string): void {
  const set = listeners.get(name);
  if (!set?.size) return;
  let value: unknown;
  try { value = JSON.parse(data); } catch { return; }
  for (const f of set) f(value);
}

/** Parses text/event-stream as it comes: `event:` and `data:` lines, a blank line ends an event,
 * `:` lines are comments (the heartbeat). */
class SseParser {
  private buf = '';
  private event = 'message';
  private data: string[] = [];
  push(text: string): void {
    this.buf += text;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).replace(/\r$/, '');
      this.buf = this.buf.slice(nl + 1);
      if (line === '') {
        if (this.data.length) dispatch(this.event, this.data.join('\n'));
        this.event = 'message';
        this.data = [];
      } else if (line.startsWith('event:')) this.event = line.slice(6).trim();
      else if (line.startsWith('data:')) this.data.push(line.slice(5).replace(/^ /, ''));
    }
  }
}

async function run(ctl: AbortController, reconnected: boolean): Promise<void> {
  setState('connecting');
  try {
    const r = await fetch('/api/events', { headers: { 'x-csrf-token': csrfToken(), accept: 'text/event-stream' }, credentials: 'same-origin', signal: ctl.signal, cache: 'no-store' });
    if (r.status === 401 || r.status === 403) { location.assign('/'); return; }
    if (!r.ok || !r.body) throw new Error(`HTTP ${r.status}`);
    setState('live');
    if (reconnected) dispatch('dropped', JSON.stringify({ dropped: 0, reconnected: true, message: 'the event stream was reopened' }));
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.push(value);
    }
  } catch (e) {
    if (ctl.signal.aborted) return;
    void e;
  }
  if (ctl.signal.aborted || abort !== ctl) return;
  setState('connecting');
  retry = window.setTimeout(() => { if (abort === ctl) void run(ctl, true); }, RETRY_MS);
}

function open(): void {
  if (abort) return;
  abort = new AbortController();
  void run(abort, false);
}

function closeIfUnused(): void {
  for (const s of listeners.values()) if (s.size) return;
  abort?.abort();
  abort = null;
  clearTimeout(retry);
  setState('down');
}

/** Calls fn with each event of that name; returns what stops it. */
export function onEvent(name: EventName, fn: Listener): () => void {
  let set = listeners.get(name);
  if (!set) listeners.set(name, (set = new Set()));
  set.add(fn);
  open();
  return () => { set.delete(fn); closeIfUnused(); };
}

export function onStreamState(fn: (s: StreamState) => void): () => void {
  stateListeners.add(fn);
  fn(state);
  return () => stateListeners.delete(fn);
}
