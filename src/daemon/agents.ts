/* The agent-facing side of the daemon: a Unix stream socket, one request per line, replies in
 * order. Identity comes from SO_PEERCRED and /proc at accept. Nothing here waits: a slow or
 * hostile client can only fill its own buffers, which are bounded.
 *
 * Every local user may be hostile (docs/security.md). Each user (uid) has a share
 * (shares.ts): a bound on connections (with a reserve only root may use), on lines handled
 * per event-loop turn, and on bytes waiting. Lines within the user's turn are handled as they
 * arrive; the rest wait for a background turn that serves users round robin, a bounded number
 * of lines each, so one user's backlog never holds another's question for more than a turn.
 * A connection whose buffered lines pass BACKLOG_PAUSE bytes, or whose user's do, is not read
 * until worked off: its agent's sends then find the socket full and drop notifications, never
 * requests (docs/agent.md). A connection that sends MAX_ERRORS malformed lines is closed; a
 * bad line costs what its length costs.
 *
 * A connection belongs to the process that opened it (its pid and start time): if that
 * process is gone, whoever holds the connection now is nobody we know, and it is closed. A
 * process that changed its uid or gid after connecting is decided by its current ones (read
 * again at most every RECHECK_MS; the agent itself reconnects at once, docs/agent.md). */

import { connect as netConnect, createServer, Socket, type Server } from 'node:net';
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { systemClock, type Clock, type Timer } from '../clock.js';
import { native } from '../native.js';
import { QosError } from '../errors.js';
import type { Identity } from '../policy/engine.js';
import { lineEnd, lineText, MAX_LINE } from '../protocol/lines.js';
import { decodeFast } from '../protocol/fast-decode.js';
import { decode, NOTIFICATIONS, type MessageType } from '../protocol/messages.js';
import { encodeError, encodeRing } from '../protocol/replies.js';
import { RING_LAYOUT, RING_SLOTS, type RingCaller, type RingReader } from '../protocol/note-ring.js';
import { passRing, RingPoller } from './agent-rings.js';
import type { Decider, DecisionRecord, Outcome } from './decide.js';
import { BatchTime } from './batch-time.js';
import type { Cred, IdentityResolver } from './identity.js';
import { acceptPending, credsOf, peerCred, startTime } from './identity.js';
import type { Metrics } from './metrics.js';
import { CONN_TURN_LINES, limitsFor, Shares, TURN_LINES, type AgentLimits, type Share } from './shares.js';

/** A client that leaves this many reply bytes unread is disconnected. */
const MAX_UNREAD = 1 << 20;
/** Buffered bytes after which a connection is not read until worked off. */
const BACKLOG_PAUSE = 64 * 1024;
/** Malformed lines a connection may send; the next one closes it (an agent sends none). */
export const MAX_ERRORS = 8;
/** How often a connection's process is checked again (still there, same uid and gid). */
const RECHECK_MS = 1000;
/** Notifications still buffered when an agent closes its connection that are handled then (a
 * Cleanup sent just before exit; an agent leaves a few at most). */
const FINAL_LINES = 64;
/** The loop notes the time every BEAT_MS; a gap over STALL_MS (ten times the agent's default
 * timeout) means it was stopped (SIGSTOP, a debugger) or stalled. Then, and for CATCH_UP_MS
 * after, questions are not answered as they are read but in the turn after that round of
 * reading, by which the connections of agents that stopped waiting have ended: their
 * questions are dropped rather than decided for nobody (the backlog of a long stop is
 * connections taken from the listen queue in later rounds). */
const BEAT_MS = 250;
export const STALL_MS = 500;
const CATCH_UP_MS = 5000;

export interface AgentServerOptions {
  path: string;
  decider: Decider;
  identities: IdentityResolver;
  metrics: Metrics;
  log: Logger;
  limits?: AgentLimits;
  onDecision: (r: DecisionRecord) => void;
  /** the last connection of a process closed */
  onDisconnect: (pid: number, start: number) => void;
  /** a process's agent connected (pid and start time from the kernel: SO_PEERCRED, pidfd) */
  onConnect?: (pid: number, start: number) => void;
  /** the time the decider and the flow table record, fixed for each batch of messages */
  time?: BatchTime;
  /** time for the stall watch (default: the system's) */
  clock?: Clock;
}

interface Conn {
  sock: Socket;
  cred: Cred;
  id: Identity;
  share: Share<Conn>;
  /** received bytes not handled yet, in pieces (joined when handled: joining as they come
   * would copy a long line once per piece) */
  bufs: Buffer[];
  len: number;
  /** bufs holds a complete line */
  nl: boolean;
  /** malformed lines so far */
  errors: number;
  /** a Startup was handled (a process announces itself once per connection) */
  started: boolean;
  /** when the process was last checked (performance.now()) */
  checkedAt: number;
  /** a malformed notification was seen, or the process is gone: hang up after the replies
   * before it */
  broken: string | null;
  /** in its user's background queue of requests, or of notifications (an entry of the other
   * kind left behind is skipped) */
  queued: 'ask' | 'tell' | null;
  /** hung up: what still arrives is dropped until the agent closes its end */
  closing: boolean;
  /** the agent closed its end: nobody waits for answers; its questions are dropped, its
   * notifications still handled */
  ended: boolean;
  /** a policy script is deciding a request: later lines wait, so replies stay in order */
  waiting: boolean;
  /** replies not written yet: held while a script decides a request sent with them */
  held: string;
  /** held has already waited for one script decision (it waits for no more than one) */
  heldLong: boolean;
  /** its notification ring (agent-rings.ts), if the agent asked for one */
  ring: RingReader | null;
  ringBuf: ArrayBuffer | null;
  hot: number;
  /** the caller its ring records are read for (drainRecords), and the identity it was made of */
  who: (RingCaller & { id: Identity }) | null;
}

export class AgentServer {
  private server: Server | null = null;
  private readonly conns = new Set<Conn>();
  private readonly perPid = new Map<number, number>();
  private readonly shares: Shares<Conn>;
  private backgroundScheduled = false;
  /** where the next background turn starts among the waiting users */
  private rr = 0;
  private readonly lastRefusal = new Map<number, number>();
  private readonly clock: Clock;
  private beat: number;
  private catchUpUntil = 0;
  private beatTimer: Timer | null = null;
  private readonly rings: RingPoller<Conn>;
  private readonly time: BatchTime;

  constructor(private readonly o: AgentServerOptions) {
    this.shares = new Shares(o.limits ?? limitsFor(1024));
    this.clock = o.clock ?? systemClock;
    this.time = o.time ?? new BatchTime();
    this.beat = this.clock.now();
    // a poll is a turn of its own: every user's share is whole again
    this.rings = new RingPoller(this.clock, (c, all) => this.drainRing(c, all), () => { this.shares.turn++; });
  }

  get connections(): number {
    return this.conns.size;
  }

  get limits(): AgentLimits {
    return this.shares.limits;
  }

  /** Connections held by each uid. */
  connectionsByUser(): Map<number, number> {
    return this.shares.byUser();
  }

  async listen(): Promise<void> {
    const { path } = this.o;
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    await removeStaleSocket(path);
    const server = createServer({ allowHalfOpen: false }, (s) => {
      this.accept(s);
      this.acceptQueued();
    });
    server.maxConnections = this.shares.limits.connections + 64; // ours refuse first, with a reason
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => { server.off('error', reject); resolve(); });
    });
    // Connections are made here, not by Node's server, so that they read into READ_BUF (see
    // readInto); the server's own way stays for a Node without the listening handle's hook.
    const lh = (server as unknown as { _handle?: { onconnection?: unknown } })._handle;
    if (lh && typeof lh.onconnection === 'function') {
      lh.onconnection = (err: number, handle: unknown) => {
        if (err) { this.o.metrics.errors.inc({ code: 'QOS_ERR_ACCEPT' }); return; }
        this.accept(this.socketOf({ handle }));
        this.acceptQueued();
      };
    }
    // Every user's programs must reach the daemon; identity comes from the kernel, not the socket mode.
    await chmod(path, 0o666);
    this.server = server;
    this.beatTimer = this.clock.every(BEAT_MS, () => {
      const now = this.clock.now();
      if (now - this.beat > STALL_MS) this.catchUpUntil = now + CATCH_UP_MS;
      this.beat = now;
    });
  }

  async close(): Promise<void> {
    this.beatTimer?.cancel();
    this.rings.close();
    this.o.metrics.rings.set(0);
    for (const c of this.conns) c.sock.destroy();
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((r) => s.close(() => r()));
    await unlink(this.o.path).catch(() => undefined);
  }

  /** Closes the connections whose process is gone (held by an heir nobody can be held to);
   * returns how many. The daemon's periodic sweep calls it. */
  sweep(): number {
    let n = 0;
    const starts = new Map<number, number | undefined>();
    for (const c of this.conns) {
      if (c.closing) continue;
      const pid = c.cred.pid;
      if (!starts.has(pid)) starts.set(pid, startTime(pid));
      if (starts.get(pid) !== c.cred.start) { this.hangUp(c, 'process gone'); n++; }
    }
    return n;
  }

  /** Takes every other connection waiting in the listen queue now, not one per loop turn. */
  private acceptQueued(): void {
    const lfd = handleFd(this.server);
    if (lfd === undefined) return;
    for (const fd of acceptPending(lfd, 4096)) this.accept(this.socketOf({ fd }));
  }

  /** A socket for an accepted connection that reads into READ_BUF: its bytes are handed to
   * readInto as they come, without the Buffer, the stream push and the next-tick callback
   * Node's readable stream makes per read (a sixth of the daemon's time per question under
   * load). The connection is set once accept() has made it. */
  private socketOf(from: { fd: number } | { handle: unknown }): Socket & { [CONN]?: Conn | null } {
    const sock: Socket & { [CONN]?: Conn | null } = new Socket({
      ...from, readable: true, writable: true, allowHalfOpen: false,
      onread: { buffer: READ_BUF, callback: (n: number) => { const c = sock[CONN]; if (c) this.readInto(c, n); } },
    } as unknown as ConstructorParameters<typeof Socket>[0]); // (onread: in Node since 12, not in its types)
    sock[CONN] = null;
    return sock;
  }

  /** n bytes read into READ_BUF for c: handled as data(), and what c keeps of them copied out
   * before READ_BUF is read into again. */
  private readInto(c: Conn, n: number): void {
    this.data(c, READ_BUF.subarray(0, n));
    const bufs = c.bufs;
    for (let i = 0; i < bufs.length; i++) if (bufs[i]!.buffer === READ_BUF.buffer) bufs[i] = Buffer.from(bufs[i]!);
  }

  private accept(sock: Socket & { [CONN]?: Conn | null }): void {
    const fd = handleFd(sock);
    const cred = fd !== undefined ? peerCred(fd) : null;
    if (!cred) {
      this.o.metrics.errors.inc({ code: 'QOS_ERR_PEERCRED' });
      sock.destroy();
      return;
    }
    const share = this.shares.admit(cred.uid);
    if (typeof share === 'string') {
      // Closed without a word: the agent takes it as an absent daemon and backs off. (A reply
      // would be read as the answer to its first question.)
      this.o.metrics.refused.inc({ reason: share });
      this.noteRefusal(cred, share);
      sock.destroy();
      return;
    }
    const id = this.o.identities.resolve(cred);
    if (!id) {
      this.shares.leave(share);
      this.o.metrics.refused.inc({ reason: 'process-gone' });
      sock.destroy();
      return;
    }
    const conn: Conn = {
      sock, cred, id, share, bufs: [], len: 0, nl: false, errors: 0, started: false, checkedAt: performance.now(), broken: null,
      queued: null, closing: false, ended: false, waiting: false, held: '', heldLong: false, ring: null, ringBuf: null, hot: 0, who: null,
    };
    this.conns.add(conn);
    if (!this.perPid.has(cred.pid)) this.o.onConnect?.(cred.pid, cred.start);
    this.perPid.set(cred.pid, (this.perPid.get(cred.pid) ?? 0) + 1);
    this.o.metrics.agents.inc();
    // (one of socketOf's reads into READ_BUF; one Node's server made, the usual way)
    if (sock[CONN] === undefined) sock.on('data', (chunk: Buffer) => this.data(conn, chunk));
    sock[CONN] = conn;
    sock.on('error', () => undefined);
    // the agent closed its end: nobody waits for answers any more
    sock.on('end', () => { conn.ended = true; });
    sock.on('close', () => {
      // its threads' records first (written before its last lines), then those lines
      this.rings.drainPid(conn.cred.pid);
      this.releaseRing(conn);
      this.finalLines(conn);
      this.conns.delete(conn);
      this.setLen(conn, [], 0);
      this.shares.leave(conn.share);
      conn.share.paused.delete(conn);
      this.o.metrics.agents.dec();
      const n = (this.perPid.get(conn.cred.pid) ?? 1) - 1;
      if (n > 0) this.perPid.set(conn.cred.pid, n);
      else { this.perPid.delete(conn.cred.pid); this.o.onDisconnect(conn.cred.pid, conn.cred.start); }
    });
  }

  /** Logs a refused connection, once a minute per uid at most. */
  private noteRefusal(cred: Cred, why: string): void {
    const now = Date.now();
    if (now - (this.lastRefusal.get(cred.uid) ?? -Infinity) < 60_000) return;
    if (this.lastRefusal.size > 10_000) this.lastRefusal.clear();
    this.lastRefusal.set(cred.uid, now);
    this.o.log.warn({ uid: cred.uid, pid: cred.pid, bound: why, limits: this.shares.limits }, 'agent connection refused: a bound on connections is reached (qos status shows who holds them)');
  }

  private data(c: Conn, chunk: Buffer): void {
    if (c.closing) return;
    c.bufs.push(chunk);
    this.setLen(c, c.bufs, c.len + chunk.length);
    if (!c.nl && lineEnd(chunk, 0) >= 0) c.nl = true;
    if (!c.nl) {
      this.checkLength(c);
      this.pauseIfFull(c);
      return;
    }
    this.serve(c);
  }

  /** Sets what c holds unhandled, keeping its user's byte count. */
  private setLen(c: Conn, bufs: Buffer[], len: number): void {
    c.share.bytes += len - c.len;
    c.bufs = bufs;
    c.len = len;
  }

  /** c's unhandled bytes as one buffer. */
  private joined(c: Conn): Buffer | null {
    if (c.bufs.length > 1) c.bufs = [Buffer.concat(c.bufs, c.len)];
    return c.bufs[0] ?? null;
  }

  /** Handles c's complete lines at once if they include a request and its user's turn has
   * room; the rest wait for a background turn, requests before notifications. Nothing while a
   * script is deciding one of its requests. */
  private serve(c: Conn): void {
    if (c.sock.destroyed || c.closing) return;
    if (c.waiting) { this.pauseIfFull(c); return; }
    if (c.nl) {
      let ask = hasRequest(this.joined(c)!);
      const room = ask && !this.behind() ? this.shares.room(c.share) : 0;
      if (room > 0) {
        this.shares.spend(c.share, this.drain(c, room));
        if (c.sock.destroyed || c.closing || c.waiting) return;
        ask = c.nl && hasRequest(this.joined(c)!);
      }
      if (c.nl) this.enqueue(c, ask);
    }
    this.pauseIfFull(c);
    this.resumeIfRoom(c);
  }

  /** Whether the loop was stopped or stalled a moment ago (BEAT_MS). */
  behind(): boolean {
    const now = this.clock.now();
    return now - this.beat > STALL_MS || now < this.catchUpUntil;
  }

  /** Puts c in its user's queue of requests (ask: it holds one) or of notifications. */
  private enqueue(c: Conn, ask: boolean): void {
    const kind = ask ? 'ask' : 'tell';
    if (c.queued === kind || c.queued === 'ask') return;
    c.queued = kind;
    (kind === 'ask' ? c.share.asks : c.share.tells).push(c);
    this.scheduleBackground();
  }

  private pauseIfFull(c: Conn): void {
    if (c.sock.isPaused()) return;
    if (this.shares.full(c.share)) { c.share.paused.add(c); c.sock.pause(); }
    else if (c.len > BACKLOG_PAUSE) c.sock.pause();
  }

  /** Reads c again once its buffers (and its user's) have room; with its user's room, the
   * user's other connections paused for it too. */
  private resumeIfRoom(c: Conn): void {
    const s = c.share;
    if (this.shares.full(s)) return;
    if (c.sock.isPaused() && !c.waiting && !c.closing && c.len <= BACKLOG_PAUSE / 2) { s.paused.delete(c); c.sock.resume(); }
    if (s.paused.size && s.bytes < this.shares.limits.userBytes / 2) {
      for (const o of s.paused) if (!o.waiting && !o.closing && o.len <= BACKLOG_PAUSE / 2) { s.paused.delete(o); o.sock.resume(); }
    }
  }

  private scheduleBackground(): void {
    if (this.backgroundScheduled) return;
    this.backgroundScheduled = true;
    setImmediate(() => this.backgroundTurn());
  }

  /** A new turn: every user's room is whole again. Works off waiting lines round robin over
   * users (each within their room) and, within a user, over their connections
   * (CONN_TURN_LINES each per round; those holding requests first), TURN_LINES in all; then
   * lets the loop turn. */
  private backgroundTurn(): void {
    this.backgroundScheduled = false;
    this.shares.turn++;
    const users = this.shares.waiting();
    if (!users.length) return;
    const first = this.rr++ % users.length;
    const order = [...users.slice(first), ...users.slice(0, first)];
    let budget = TURN_LINES;
    for (let progress = true; progress && budget > 0;) {
      progress = false;
      for (const u of order) {
        if (budget <= 0) break;
        const room = this.shares.room(u);
        const kind = u.asks.length ? 'ask' : 'tell';
        const queue = kind === 'ask' ? u.asks : u.tells;
        if (room <= 0 || !queue.length) continue;
        const c = queue.shift()!;
        progress = true;
        if (c.queued !== kind) continue; // moved to the other queue
        c.queued = null;
        if (c.sock.destroyed || c.closing || c.waiting) continue;
        const n = this.drain(c, Math.min(room, CONN_TURN_LINES, budget));
        this.shares.spend(u, n);
        budget -= n;
        if (c.nl && !c.sock.destroyed && !c.closing && !c.waiting) this.enqueue(c, hasRequest(this.joined(c)!));
        this.resumeIfRoom(c);
      }
    }
    if (this.shares.waiting().length) this.scheduleBackground();
  }

  /** Handles up to maxLines complete lines of c and writes their replies; returns how many.
   * The records in the rings of c's process come first: those written before these lines
   * were sent are about earlier calls. */
  private drain(c: Conn, maxLines: number): number {
    this.time.begin();
    try {
      return this.drainLines(c, maxLines);
    } finally {
      this.time.end();
    }
  }

  private drainLines(c: Conn, maxLines: number): number {
    if (this.rings.size) this.rings.drainPid(c.cred.pid);
    const buf = this.joined(c);
    if (!buf || c.sock.destroyed || c.closing || c.waiting) return 0;
    let start = 0;
    let out = c.held;
    c.held = '';
    let n = 0;
    let nl = lineEnd(buf, 0);
    while (n < maxLines && nl >= 0) {
      n++;
      // a question of an agent that gave up has no one to answer (docs/security.md)
      const unasked = c.ended && !isNotification(buf, start, nl);
      if (unasked) this.o.metrics.unanswered.inc();
      // (fresh: nothing goes before this line's reply, so a ring may go with it)
      const r = unasked ? null : this.line(c, buf, start, nl, false, out === '' && c.sock.writableLength === 0);
      start = nl + 1;
      nl = lineEnd(buf, start);
      if (r instanceof Promise) {
        // A script decides: hold what comes after until it has. The replies before it are
        // held too and go out with its own in one write: they answer lines the agent sent
        // together with this one, so it was not waiting for them (its Socket + Connect).
        c.waiting = true;
        this.keep(c, buf, start, nl >= 0);
        c.held = out;
        void r.then((reply) => {
          c.waiting = false;
          if (c.sock.destroyed || c.closing) return;
          if (reply !== null) c.held += reply + '\n';
          // A request that had already arrived is served first, still holding these replies
          // (once: a stream of scripted requests must not hold a reply for long); otherwise
          // they are written now.
          const rest = c.nl ? this.joined(c) : null;
          if (!c.heldLong && rest && hasRequest(rest)) c.heldLong = true;
          else {
            if (c.held) this.reply(c, c.held);
            c.held = '';
            c.heldLong = false;
          }
          this.serve(c);
        });
        return n;
      }
      if (r !== null) out += r + '\n';
      if (c.broken !== null) {
        // A malformed notification (any reply would be taken for the answer to the agent's
        // next request), too many malformed lines, or the process gone: answer what came
        // before and hang up.
        this.hangUp(c, c.broken, out);
        return n;
      }
    }
    this.keep(c, buf, start, nl >= 0);
    if (out) {
      this.reply(c, out);
      if (c.sock.writableLength > MAX_UNREAD) { this.hangUp(c, 'replies left unread'); return n; }
    }
    this.checkLength(c);
    return n;
  }

  /** Writes replies to c: straight on its descriptor when Node has nothing queued there (the
   * usual case: a stream write of a few bytes cost a fifth of a decision in Node's stream
   * machinery), else, or for what did not go, behind what is queued. */
  private reply(c: Conn, text: string): void {
    const fd = c.sock.writableLength === 0 ? handleFd(c.sock) : undefined;
    const left = fd !== undefined ? native.sendText(fd, text) : -1;
    if (left === 0) return;
    // nothing went (the socket is full or failed: Node's write reports it), or a part
    c.sock.write(left < 0 ? text : Buffer.from(text).subarray(-left));
  }

  /** Keeps buf from start as c's unhandled bytes; hasLine: it holds a complete line. */
  private keep(c: Conn, buf: Buffer, start: number, hasLine: boolean): void {
    // Only a partial line left: a copy, so it does not pin a whole read buffer.
    const rest = start >= buf.length ? null : hasLine || start === 0 ? buf.subarray(start) : Buffer.from(buf.subarray(start));
    this.setLen(c, rest ? [rest] : [], rest ? rest.length : 0);
    c.nl = hasLine;
  }

  /** A partial line longer than any message is refused and the connection closed. */
  private checkLength(c: Conn): void {
    if (c.nl || c.len <= MAX_LINE || c.closing) return;
    this.o.metrics.errors.inc({ code: 'QOS_ERR_MESSAGE_TOO_LONG' });
    this.hangUp(c, 'line too long', `${encodeError(new QosError('QOS_ERR_MESSAGE_TOO_LONG', `message longer than ${MAX_LINE} bytes`))}\n`);
  }

  /** Closes a connection after writing last words. What the agent sent after them is read and
   * dropped until it closes its end (closing with unread input would reset the connection,
   * and the agent could lose the replies before it); a second later it is cut regardless. */
  private hangUp(c: Conn, reason: string, last = ''): void {
    if (c.closing) return;
    this.o.log.debug({ pid: c.cred.pid, uid: c.cred.uid, reason }, 'closing agent connection');
    this.o.metrics.hangups.inc({ reason });
    c.closing = true;
    this.releaseRing(c);
    this.setLen(c, [], 0);
    c.nl = false;
    c.share.paused.delete(c);
    c.sock.end(last);
    if (c.sock.isPaused()) c.sock.resume();
    this.clock.after(1000, () => c.sock.destroy());
  }

  /** At close: handles the notifications the agent sent before closing that no turn reached
   * yet (at most FINAL_LINES; its questions are dropped: nobody waits for their answers). */
  private finalLines(c: Conn): void {
    if (c.closing || c.waiting || !c.nl) return;
    const buf = this.joined(c)!;
    let start = 0, dropped = 0;
    for (let n = 0, nl = lineEnd(buf, 0); nl >= 0 && n < FINAL_LINES; n++, start = nl + 1, nl = lineEnd(buf, start)) {
      if (isNotification(buf, start, nl)) this.line(c, buf, start, nl, true);
      else dropped++;
    }
    if (dropped) this.o.metrics.unanswered.inc(dropped);
  }

  /** Whether c's process is still the one that connected, with the uid and gid it had;
   * follows a change of uid or gid. False: the process is gone. */
  private recheck(c: Conn, now: number): boolean {
    c.checkedAt = now;
    const cr = credsOf(c.cred.pid);
    if (!cr || cr.start !== c.cred.start) return false;
    if (cr.uid === c.cred.uid && cr.gid === c.cred.gid) return true;
    const cred = { ...c.cred, uid: cr.uid, gid: cr.gid };
    const id = this.o.identities.resolve(cred, true);
    if (!id) return false;
    this.o.log.info({ pid: cred.pid, from: { uid: c.cred.uid, gid: c.cred.gid }, to: { uid: cr.uid, gid: cr.gid } }, 'agent process changed its credentials: decided by the new ones');
    if (cr.uid !== c.cred.uid) {
      const share = this.shares.admit(cr.uid);
      if (typeof share === 'string') return false;
      this.setLen(c, [], 0);
      this.shares.leave(c.share);
      c.share.paused.delete(c);
      c.share = share;
    }
    c.cred = cred;
    c.id = id;
    return true;
  }

  /** Handles one line; returns the reply (null for notifications, and for a Ring whose reply
   * went with the ring), or a Promise of it when a policy script decides (the script runs in
   * a worker, never here). fresh: nothing is written or queued on c before this reply. */
  private line(c: Conn, buf: Buffer, start: number, end: number, final = false, fresh = false): string | null | Promise<string | null> {
    const t0 = performance.now();
    // (final: the process may have exited after sending; its lines still speak for it, and
    // what they can do is bounded by the identity the connection has.)
    if (!final && t0 - c.checkedAt > RECHECK_MS && !this.recheck(c, t0)) {
      c.broken = 'process gone';
      return null;
    }
    // the plain lines agents send most straight from the bytes, the rest (and errors) as text
    let m = decodeFast(buf, start, end);
    if (!m) {
      const text = lineText(buf, start, end);
      try {
        m = decode(text);
      } catch (e) {
        return this.badLine(c, text, e);
      }
    }
    this.o.metrics.message(m.type);
    // A Startup opens a process's life (new, forked or exec'd): learn who it is afresh, once
    // per connection (the agent sends one; more would only make us read /proc again).
    if (m.type === 'Startup' && !c.started) {
      c.started = true;
      const id = this.o.identities.resolve(c.cred, true);
      if (!id) { c.broken = 'process gone'; return null; }
      c.id = id;
    }
    if (m.type === 'Ring') return this.giveRing(c, m.layout, fresh);
    if (m.pid !== c.id.pid) this.o.log.debug({ claimed: m.pid, pid: c.id.pid }, 'agent claims another pid; using the kernel\'s');
    const out = this.o.decider.handle(m, c.id);
    return out instanceof Promise ? out.then((o) => this.finish(o, t0)) : this.finish(out, t0);
  }

  /** A line decode() refused: an ERROR reply to a request, and the connection closed after a
   * malformed notification (any reply would be taken for the answer to the next request) or
   * after MAX_ERRORS malformed lines. */
  private badLine(c: Conn, text: string, e: unknown): string | null {
    const err = e instanceof QosError ? e : new QosError('QOS_ERR_PROTOCOL', String(e));
    this.o.metrics.errors.inc({ code: err.code });
    if (NOTIFICATIONS.has(/^\s*(\S*)/.exec(text)![1] as MessageType)) {
      c.broken = 'malformed notification';
      return null;
    }
    if (++c.errors >= MAX_ERRORS) c.broken = 'malformed lines';
    return encodeError(err);
  }

  /** The reply to Ring: the connection's notification ring passed with `RING n` (written here,
   * so null), or `RING 0` when none can go: one is there already, the agent writes another
   * layout, or replies are queued before this one (the descriptor must come with this reply). */
  private giveRing(c: Conn, layout: number, fresh: boolean): string | null {
    const fd = fresh && !c.ring && layout === RING_LAYOUT ? handleFd(c.sock) : undefined;
    const passed = fd !== undefined ? passRing(fd) : null;
    if (!passed) return encodeRing(0);
    this.rings.add(c, passed.ring, passed.buf);
    this.o.metrics.rings.inc();
    if (passed.rest) c.sock.write(passed.rest);
    return null;
  }

  private releaseRing(c: Conn): void {
    if (!c.ring) return;
    this.rings.remove(c);
    this.o.metrics.rings.dec();
  }

  /** Handles the records waiting in c's ring, as the lines they stand for: all of them, or as
   * many as its user's share of this turn allows. A malformed record counts as a malformed
   * line (MAX_ERRORS of them close the connection). */
  private drainRing(c: Conn, all: boolean): { read: number; more: boolean } {
    if (!c.ring || c.closing) return { read: 0, more: false };
    this.time.begin();
    try {
      return this.drainRecords(c, c.ring, all);
    } finally {
      this.time.end();
    }
  }

  private drainRecords(c: Conn, ring: RingReader, all: boolean): { read: number; more: boolean } {
    // (all: no bound that matters; a small integer, as Infinity made V8 drop its optimized code here)
    const max = all ? 1 << 30 : Math.min(this.shares.room(c.share), RING_SLOTS);
    // who the records speak for: made again only when the connection's identity changes
    if (c.who?.id !== c.id) c.who = { id: c.id, pid: c.id.pid, uid: c.id.uid, cmd: c.id.cmdline };
    const who = c.who;
    const shed = ring.shed;
    let n = 0;
    while (n < max) {
      const m = ring.next(who);
      if (m === null) break;
      n++;
      if (typeof m === 'string') {
        this.o.metrics.errors.inc({ code: 'QOS_ERR_PROTOCOL' });
        this.o.log.debug({ pid: c.cred.pid, problem: m }, 'malformed ring record');
        if (++c.errors >= MAX_ERRORS) { this.hangUp(c, 'malformed ring records'); break; }
        continue;
      }
      this.o.metrics.message(m.type);
      // (a notification: no reply, so no answer time to take)
      const out = this.o.decider.handle(m, c.id);
      if (out instanceof Promise) void out.then((o) => this.finish(o, 0));
      else this.finish(out, 0);
    }
    if (ring.shed !== shed) this.o.metrics.ringShed.inc(ring.shed - shed);
    this.shares.spend(c.share, n);
    return { read: n, more: n >= max && !!c.ring?.pending };
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

/** What each agent connection reads into (socketOf): one buffer for all, since each read is
 * handled before the next; what a connection keeps of it is copied (readInto). */
const READ_BUF = Buffer.allocUnsafeSlow(64 * 1024);
/** A socket's connection, for its read callback. */
const CONN = Symbol('conn');

function handleFd(h: Server | Socket | null): number | undefined {
  const fd = (h as unknown as { _handle?: { fd?: number } } | null)?._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

const NOTIFICATION_PREFIXES = [...NOTIFICATIONS].map((t) => Buffer.from(t + ' '));

/** Whether a complete line in buf is a request (anything but a notification: garbage counts,
 * it gets an ERROR reply). Looks at the first bytes of each line only. */
export function hasRequest(buf: Buffer): boolean {
  let start = 0;
  for (let nl = lineEnd(buf, 0); nl >= 0; start = nl + 1, nl = lineEnd(buf, start)) {
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
