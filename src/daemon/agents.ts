/* The agent-facing side of the daemon: a Unix stream socket, one request per line, replies in
 * order. Identity comes from SO_PEERCRED and /proc at accept. Nothing here waits: a slow or
 * hostile client can only fill its own buffers, which are bounded.
 *
 * Scheduling: an agent waits (50 ms at most) only for requests; notifications (Close, Cached,
 * Shutdown, Cleanup) need no answer. A connection whose buffered lines include a request is
 * served at once, in order; one holding only notifications goes to a background queue served
 * a bounded number of lines per event-loop turn, so that a thread telling us about thousands
 * of connects cannot make another thread's first question miss its deadline. A backlog past
 * BACKLOG_PAUSE bytes stops reading that connection: its agent's sends then find the socket
 * full and drop notifications, never requests (docs/agent.md). */

import { connect as netConnect, createServer, Socket, type Server } from 'node:net';
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { QosError } from '../errors.js';
import type { Identity } from '../policy/engine.js';
import { decode, encodeError, MAX_LINE, NOTIFICATIONS, type Message, type MessageType } from '../protocol/messages.js';
import type { Decider, DecisionRecord, Outcome } from './decide.js';
import type { Cred, IdentityResolver } from './identity.js';
import { acceptPending, peerCred } from './identity.js';
import type { Metrics } from './metrics.js';

/** A client that leaves this many reply bytes unread is disconnected. */
const MAX_UNREAD = 1 << 20;
/** Notification lines handled per event-loop turn, in all, and per connection. */
const BACKGROUND_LINES = 256;
const BACKGROUND_LINES_PER_CONN = 32;
/** Buffered bytes of notifications after which a connection is not read until worked off. */
const BACKLOG_PAUSE = 64 * 1024;

export interface AgentServerOptions {
  path: string;
  decider: Decider;
  identities: IdentityResolver;
  metrics: Metrics;
  log: Logger;
  onDecision: (r: DecisionRecord) => void;
  onDisconnect: (pid: number) => void;
}

interface Conn {
  sock: Socket;
  cred: Cred;
  id: Identity;
  /** received bytes not handled yet (a partial line, or lines waiting for a background turn) */
  pending: Buffer | null;
  /** a malformed notification was seen: hang up after the replies before it */
  broken: boolean;
  /** in the background queue */
  queued: boolean;
  /** hung up: what still arrives is dropped until the agent closes its end */
  closing: boolean;
  /** a policy script is deciding a request: later lines wait, so replies stay in order */
  waiting: boolean;
  /** replies not written yet: held while a script decides a request sent with them */
  held: string;
  /** held has already waited for one script decision (it waits for no more than one) */
  heldLong: boolean;
}

export class AgentServer {
  private server: Server | null = null;
  private readonly conns = new Set<Conn>();
  private readonly perPid = new Map<number, number>();
  private readonly background: Conn[] = [];
  private backgroundScheduled = false;

  constructor(private readonly o: AgentServerOptions) {}

  get connections(): number {
    return this.conns.size;
  }

  /** Connections open per pid (to tell a live process from a gone one). */
  connectedPids(): ReadonlySet<number> {
    return new Set(this.perPid.keys());
  }

  async listen(): Promise<void> {
    const { path } = this.o;
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    await removeStaleSocket(path);
    const server = createServer({ allowHalfOpen: false }, (s) => {
      this.accept(s);
      this.acceptQueued();
    });
    server.maxConnections = 65536;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => { server.off('error', reject); resolve(); });
    });
    // Every user's programs must reach the daemon; identity comes from the kernel, not the socket mode.
    await chmod(path, 0o666);
    this.server = server;
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.sock.destroy();
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
    await unlink(this.o.path).catch(() => undefined);
  }

  /** Takes every other connection waiting in the listen queue now, not one per loop turn. */
  private acceptQueued(): void {
    const lfd = handleFd(this.server);
    if (lfd === undefined) return;
    for (const fd of acceptPending(lfd, 4096)) this.accept(new Socket({ fd, readable: true, writable: true, allowHalfOpen: false }));
  }

  private accept(sock: Socket): void {
    const fd = handleFd(sock);
    const cred = fd !== undefined ? peerCred(fd) : null;
    if (!cred) {
      this.o.metrics.errors.inc({ code: 'QOS_ERR_PEERCRED' });
      sock.destroy();
      return;
    }
    const conn: Conn = { sock, cred, id: this.o.identities.resolve(cred), pending: null, broken: false, queued: false, closing: false, waiting: false, held: '', heldLong: false };
    this.conns.add(conn);
    this.perPid.set(cred.pid, (this.perPid.get(cred.pid) ?? 0) + 1);
    this.o.metrics.agents.inc();
    sock.on('data', (chunk: Buffer) => this.data(conn, chunk));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      this.conns.delete(conn);
      this.o.metrics.agents.dec();
      const n = (this.perPid.get(cred.pid) ?? 1) - 1;
      if (n > 0) this.perPid.set(cred.pid, n);
      else { this.perPid.delete(cred.pid); this.o.onDisconnect(cred.pid); }
    });
  }

  private data(c: Conn, chunk: Buffer): void {
    if (c.closing) return;
    c.pending = c.pending ? Buffer.concat([c.pending, chunk]) : chunk;
    this.serve(c, chunk);
  }

  /** Decides when c's buffered lines are handled: now if they hold a request, else in a
   * background turn; nothing while a script is deciding one of its requests. */
  private serve(c: Conn, chunk?: Buffer): void {
    if (!c.pending || c.sock.destroyed || c.closing) return;
    if (c.waiting) {
      if (c.pending.length > BACKLOG_PAUSE && !c.sock.isPaused()) c.sock.pause();
      return;
    }
    if (hasRequest(c.pending)) {
      this.drain(c, Infinity);
      if (!c.pending || c.sock.destroyed || c.waiting) return;
    }
    if (c.pending.indexOf(10) < 0) {
      // Only a partial line: keep it (a copy: do not pin Node's whole read buffer).
      if (chunk && c.pending.buffer === chunk.buffer) c.pending = Buffer.from(c.pending);
      this.checkLength(c);
      return;
    }
    if (c.pending.length > BACKLOG_PAUSE && !c.sock.isPaused()) c.sock.pause();
    if (!c.queued) { c.queued = true; this.background.push(c); }
    this.scheduleBackground();
  }

  private scheduleBackground(): void {
    if (this.backgroundScheduled) return;
    this.backgroundScheduled = true;
    setImmediate(() => this.backgroundTurn());
  }

  /** Works off queued notifications, a bounded number of lines per turn, round robin. */
  private backgroundTurn(): void {
    this.backgroundScheduled = false;
    let budget = BACKGROUND_LINES;
    for (let n = this.background.length; n > 0 && budget > 0; n--) {
      const c = this.background.shift()!;
      c.queued = false;
      if (c.sock.destroyed) continue;
      budget -= this.drain(c, Math.min(budget, BACKGROUND_LINES_PER_CONN));
      if (c.sock.destroyed) continue;
      if (c.pending && c.pending.indexOf(10) >= 0) { c.queued = true; this.background.push(c); }
      else if (c.sock.isPaused()) c.sock.resume();
    }
    if (this.background.length) this.scheduleBackground();
  }

  /** Handles up to maxLines complete lines of c and writes their replies; returns how many. */
  private drain(c: Conn, maxLines: number): number {
    const buf = c.pending;
    if (!buf || c.sock.destroyed || c.closing || c.waiting) return 0;
    let start = 0;
    let out = c.held;
    c.held = '';
    let n = 0;
    while (n < maxLines) {
      const nl = buf.indexOf(10, start);
      if (nl < 0) break;
      n++;
      const r = this.line(c, buf.toString('utf8', start, nl));
      start = nl + 1;
      if (r instanceof Promise) {
        // A script decides: hold what comes after until it has. The replies before it are
        // held too and go out with its own in one write: they answer lines the agent sent
        // together with this one, so it was not waiting for them (its Socket + Connect).
        c.waiting = true;
        c.pending = start < buf.length ? Buffer.from(buf.subarray(start)) : null;
        c.held = out;
        void r.then((reply) => {
          c.waiting = false;
          if (c.sock.destroyed || c.closing) return;
          if (reply !== null) c.held += reply + '\n';
          // A request that had already arrived is served first, still holding these replies
          // (once: a stream of scripted requests must not hold a reply for long); otherwise
          // they are written now.
          if (!c.heldLong && c.pending && hasRequest(c.pending)) c.heldLong = true;
          else {
            if (c.held) c.sock.write(c.held);
            c.held = '';
            c.heldLong = false;
          }
          if (c.sock.isPaused() && !c.queued) c.sock.resume();
          this.serve(c);
        });
        return n;
      }
      if (r !== null) out += r + '\n';
      if (c.broken) {
        // A malformed notification: any reply would be taken for the answer to the agent's
        // next request, so answer what came before and hang up instead.
        this.hangUp(c, 'malformed notification', out);
        return n;
      }
    }
    // Copy the remainder so it does not pin Node's whole read buffer.
    c.pending = start === 0 ? buf : start < buf.length ? Buffer.from(buf.subarray(start)) : null;
    if (out) {
      c.sock.write(out);
      if (c.sock.writableLength > MAX_UNREAD) { this.hangUp(c, 'replies left unread'); return n; }
    }
    this.checkLength(c);
    return n;
  }

  /** A partial line longer than any message is refused and the connection closed. */
  private checkLength(c: Conn): void {
    const p = c.pending;
    if (!p || p.length <= MAX_LINE || p.indexOf(10) >= 0) return;
    this.o.metrics.errors.inc({ code: 'QOS_ERR_MESSAGE_TOO_LONG' });
    this.hangUp(c, 'line too long', `${encodeError(new QosError('QOS_ERR_MESSAGE_TOO_LONG', `message longer than ${MAX_LINE} bytes`))}\n`);
  }

  /** Closes a connection after writing last words. What the agent sent after them is read and
   * dropped until it closes its end (closing with unread input would reset the connection,
   * and the agent could lose the replies before it); a second later it is cut regardless. */
  private hangUp(c: Conn, reason: string, last = ''): void {
    this.o.log.debug({ pid: c.cred.pid, reason }, 'closing agent connection');
    c.closing = true;
    c.pending = null;
    c.sock.end(last);
    if (c.sock.isPaused()) c.sock.resume();
    setTimeout(() => c.sock.destroy(), 1000).unref();
  }

  /** Handles one line; returns the reply (null for notifications), or a Promise of it when a
   * policy script decides (the script runs in a worker, never here). */
  private line(c: Conn, text: string): string | null | Promise<string | null> {
    const t0 = performance.now();
    let m: Message;
    try {
      m = decode(text);
    } catch (e) {
      const err = e instanceof QosError ? e : new QosError('QOS_ERR_PROTOCOL', String(e));
      this.o.metrics.errors.inc({ code: err.code });
      if (NOTIFICATIONS.has(/^\s*(\S*)/.exec(text)![1] as MessageType)) {
        c.broken = true;
        return null;
      }
      return encodeError(err);
    }
    this.o.metrics.message(m.type);
    // A Startup opens a process's life (new, forked or exec'd): learn who it is afresh.
    if (m.type === 'Startup') c.id = this.o.identities.resolve(c.cred, true);
    if (m.pid !== c.id.pid) this.o.log.debug({ claimed: m.pid, pid: c.id.pid }, 'agent claims another pid; using the kernel\'s');
    const out = this.o.decider.handle(m, c.id);
    return out instanceof Promise ? out.then((o) => this.finish(o, t0)) : this.finish(out, t0);
  }

  private finish(out: Outcome, t0: number): string | null {
    if (out.stale) this.o.metrics.staleCached.inc();
    if (out.record) {
      this.o.metrics.decision(out.record.rule ?? 'none', out.record.class, out.record.cached);
      this.o.onDecision(out.record);
    }
    if (out.reply !== null) this.o.metrics.latency.observe((performance.now() - t0) / 1e3);
    return out.reply;
  }
}

function handleFd(h: Server | Socket | null): number | undefined {
  const fd = (h as unknown as { _handle?: { fd?: number } } | null)?._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

const NOTIFICATION_PREFIXES = [...NOTIFICATIONS].map((t) => Buffer.from(t + ' '));

/** Whether a complete line in buf is a request (anything but a notification: garbage counts,
 * it gets an ERROR reply). Looks at the first bytes of each line only. */
export function hasRequest(buf: Buffer): boolean {
  let start = 0;
  for (let nl = buf.indexOf(10); nl >= 0; start = nl + 1, nl = buf.indexOf(10, start)) {
    if (!isNotification(buf, start, nl)) return true;
  }
  return false;
}

function isNotification(buf: Buffer, start: number, end: number): boolean {
  outer: for (const name of NOTIFICATION_PREFIXES) {
    if (end - start <= name.length) continue;
    for (let i = 0; i < name.length; i++) if (buf[start + i] !== name[i]) continue outer;
    return true;
  }
  return false;
}

/** Removes a socket file nobody listens on; refuses if a daemon is live there. */
async function removeStaleSocket(path: string): Promise<void> {
  const live = await new Promise<boolean>((resolve) => {
    const s = netConnect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
  if (live) throw new QosError('QOS_ERR_ENVIRONMENT', `another daemon is already listening on ${path}`);
  await unlink(path).catch(() => undefined);
}
