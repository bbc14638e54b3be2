/* GET /api/events: server-sent events (text/event-stream) of the flow-event hub (`open`,
 * `decided`, `closed`, `reservation`) and of the decisions (`decision`), for the dashboard's
 * live pages. The hub publishes only while it has subscribers, and each subscriber costs the
 * decision path time: this follows both sources only while at least one stream is open.
 *
 * Bounded: at most `maxStreams` at once (the admin-route streams the dashboard passes on count
 * too), and each holds at most `bufferBytes` not yet taken by its reader, plus one write
 * (at most FLUSH_BYTES, or one event past it); past it events are dropped for that
 * reader, counted, and it gets a `dropped` event once it reads again. A
 * comment line every `heartbeatMs` (one timer for all streams) keeps proxies and the browser
 * from taking a quiet stream for a dead one. */

import type { ServerResponse } from 'node:http';
import type { Clock, Timer } from '../clock.js';
import { decisionJson, type DecisionRecord } from '../daemon/decide.js';
import type { FlowEvent, FlowListener } from '../daemon/flow-events.js';

export const MAX_STREAMS = 16;
/** A reader's unread bytes; also what one turn of the event loop can give it (Node sends a
 * response's writes to the kernel only after the turn), so a burst of thousands of decisions in one
 * turn fits. */
export const STREAM_BUFFER = 1 << 20;
export const HEARTBEAT_MS = 15_000;
/** Queued events past this many bytes are written at once, not at the end of the turn. */
export const FLUSH_BYTES = 64 * 1024;

export interface EventSources {
  /** the flow-event hub (FlowEvents.subscribe): returns what stops it */
  flows(fn: FlowListener): () => void;
  /** the decision log (DecisionLog.follow) */
  decisions(fn: (r: DecisionRecord) => void): () => void;
}

export interface StreamLimits { maxStreams: number; bufferBytes: number; heartbeatMs: number }

/** Times as ISO text, the last one kept: the flows of one batch of agent messages share one
 * time (batch-time.ts), and making the text is a good part of an event's cost. */
export class IsoTime {
  private ms = NaN;
  private text = '';
  of(ms: number): string {
    if (ms !== this.ms) { this.ms = ms; this.text = new Date(ms).toISOString(); }
    return this.text;
  }
}

/** A flow event as the dashboard's stream sends it: the flow's fields, its times as ISO text. */
export function flowEventJson(e: FlowEvent, iso: IsoTime = new IsoTime()): string {
  const f = e.flow;
  return JSON.stringify({
    program: f.exe, pid: f.pid, fd: f.fd, uid: f.uid, user: f.user,
    family: f.family, type: f.type, proto: f.proto, local: f.local, remote: f.remote,
    rule: e.kind === 'decided' ? e.rule : f.rule,
    decision: e.kind === 'decided' ? e.decision : f.decision,
    class: f.class,
    created: iso.of(f.created), updated: iso.of(f.updated),
    ...(e.kind === 'closed' ? { why: e.why } : {}),
    ...(e.kind === 'reservation' ? { status: e.status } : {}),
  });
}

interface Reader { res: ServerResponse; dropped: number }

export class EventStreams {
  private readonly readers = new Set<Reader>();
  /** streams open in all: these readers and the admin-route streams passed on (claim) */
  private open = 0;
  private stopSources: (() => void)[] = [];
  private heartbeat: Timer | null = null;
  /** events of this turn of the event loop, not yet written (send, flush) */
  private queue: string[] = [];
  private queuedBytes = 0;
  private flushing = false;
  private readonly iso = new IsoTime();
  /** events dropped for readers that fell behind, since start */
  droppedTotal = 0;

  constructor(private readonly sources: EventSources, private readonly clock: Clock, private readonly limits: StreamLimits = { maxStreams: MAX_STREAMS, bufferBytes: STREAM_BUFFER, heartbeatMs: HEARTBEAT_MS }) {}

  get streams(): number {
    return this.open;
  }

  /** Takes one of the streams for a response that stays open until `res` closes; false if all
   * are taken. */
  claim(res: ServerResponse): boolean {
    if (this.open >= this.limits.maxStreams) return false;
    this.open++;
    res.once('close', () => this.open--);
    return true;
  }

  /** Serves GET /api/events on res (already claimed). */
  serve(res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    res.write('retry: 2000\n\n');
    const r: Reader = { res, dropped: 0 };
    this.readers.add(r);
    if (this.readers.size === 1) this.follow();
    res.on('drain', () => this.notice(r));
    res.once('close', () => {
      this.readers.delete(r);
      if (this.readers.size === 0) this.unfollow();
    });
  }

  /** Ends every stream (at stop). */
  close(): void {
    for (const r of this.readers) r.res.destroy();
    this.readers.clear();
    this.unfollow();
  }

  private follow(): void {
    this.stopSources = [
      this.sources.flows((e) => this.send(e.kind, () => flowEventJson(e, this.iso))),
      this.sources.decisions((d) => this.send('decision', () => decisionJson(d))),
    ];
    this.heartbeat = this.clock.every(this.limits.heartbeatMs, () => {
      for (const r of this.readers) if (r.res.writableLength <= this.limits.bufferBytes) r.res.write(': heartbeat\n\n');
    });
  }

  private unfollow(): void {
    for (const stop of this.stopSources) stop();
    this.stopSources = [];
    this.heartbeat?.cancel();
    this.heartbeat = null;
  }

  /** Queues one event for every reader. The events of one turn of the event loop go out
   * together, in one write per reader (a busy daemon decides tens of thousands of times a
   * second: a write each would cost more than the decisions), or sooner once FLUSH_BYTES are
   * queued (a turn that decides thousands of times must not hold them all). The data is made
   * only if a reader may take it: when every reader is over its bound the event is dropped for
   * all without it (this runs in the decision path). */
  private send(event: string, data: () => string): void {
    let open = false;
    for (const r of this.readers) if (r.res.writableLength <= this.limits.bufferBytes) { open = true; break; }
    if (!open) {
      for (const r of this.readers) r.dropped++;
      this.droppedTotal += this.readers.size;
      return;
    }
    const text = `event: ${event}\ndata: ${data()}\n\n`;
    this.queue.push(text);
    this.queuedBytes += text.length;
    if (this.queuedBytes >= Math.min(FLUSH_BYTES, this.limits.bufferBytes)) this.flush();
    else if (!this.flushing) { this.flushing = true; setImmediate(this.flush); }
  }

  /** The queued events to every reader within its bound; the others lose them. */
  private readonly flush = (): void => {
    this.flushing = false;
    const n = this.queue.length;
    if (!n) return;
    const chunk = this.queue.join('');
    this.queue = [];
    this.queuedBytes = 0;
    for (const r of this.readers) {
      if (r.res.writableLength > this.limits.bufferBytes) { r.dropped += n; this.droppedTotal += n; continue; }
      this.notice(r);
      r.res.write(chunk);
    }
  };

  /** Tells a reader that caught up how many events it missed. */
  private notice(r: Reader): void {
    if (!r.dropped) return;
    r.res.write(`event: dropped\ndata: ${JSON.stringify({ dropped: r.dropped, message: `${r.dropped} events dropped: this reader fell behind` })}\n\n`);
    r.dropped = 0;
  }
}
