/* The agent-facing side of the daemon: a Unix stream socket, one request per line, replies in
 * order. Identity comes from SO_PEERCRED and /proc at accept. Nothing here waits: a slow or
 * hostile client can only fill its own buffers, which are bounded. */

import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { QosError } from '../errors.js';
import type { Identity } from '../policy/engine.js';
import { decode, encodeError, MAX_LINE, type Message } from '../protocol/messages.js';
import type { Decider, DecisionRecord } from './decide.js';
import type { IdentityResolver } from './identity.js';
import { peerCred } from './identity.js';
import type { Metrics } from './metrics.js';

/** A client that leaves this many reply bytes unread is disconnected. */
const MAX_UNREAD = 1 << 20;

export interface AgentServerOptions {
  path: string;
  decider: Decider;
  identities: IdentityResolver;
  metrics: Metrics;
  log: Logger;
  onDecision: (r: DecisionRecord) => void;
  onDisconnect: (pid: number) => void;
}

interface Conn { sock: Socket; id: Identity; pending: Buffer | null }

export class AgentServer {
  private server: Server | null = null;
  private readonly conns = new Set<Conn>();
  private readonly perPid = new Map<number, number>();

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
    const server = createServer({ allowHalfOpen: false }, (s) => this.accept(s));
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

  private accept(sock: Socket): void {
    const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    const cred = typeof fd === 'number' && fd >= 0 ? peerCred(fd) : null;
    if (!cred) {
      this.o.metrics.errors.inc({ code: 'QOS_ERR_PEERCRED' });
      sock.destroy();
      return;
    }
    const conn: Conn = { sock, id: this.o.identities.resolve(cred), pending: null };
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
    const buf = c.pending ? Buffer.concat([c.pending, chunk]) : chunk;
    let start = 0;
    let out = '';
    for (;;) {
      const nl = buf.indexOf(10, start);
      if (nl < 0) break;
      const r = this.line(c, buf.toString('utf8', start, nl));
      if (r !== null) out += r + '\n';
      start = nl + 1;
    }
    const rest = buf.length - start;
    if (rest > MAX_LINE) {
      this.o.metrics.errors.inc({ code: 'QOS_ERR_MESSAGE_TOO_LONG' });
      c.sock.end(`${encodeError(new QosError('QOS_ERR_MESSAGE_TOO_LONG', `message longer than ${MAX_LINE} bytes`))}\n`);
      c.sock.destroySoon();
      c.pending = null;
      return;
    }
    c.pending = rest > 0 ? buf.subarray(start) : null;
    if (c.pending && c.pending.buffer === chunk.buffer) c.pending = Buffer.from(c.pending); // don't pin Node's read buffer
    if (out) {
      c.sock.write(out);
      if (c.sock.writableLength > MAX_UNREAD) c.sock.destroy();
    }
  }

  /** Handles one request line; returns the reply (null for notifications). */
  private line(c: Conn, text: string): string | null {
    const t0 = process.hrtime.bigint();
    let m: Message;
    try {
      m = decode(text);
    } catch (e) {
      const err = e instanceof QosError ? e : new QosError('QOS_ERR_PROTOCOL', String(e));
      this.o.metrics.errors.inc({ code: err.code });
      return encodeError(err);
    }
    this.o.metrics.messages.inc({ type: m.type });
    if (m.pid !== c.id.pid) this.o.log.debug({ claimed: m.pid, pid: c.id.pid }, 'agent claims another pid; using the kernel\'s');
    const out = this.o.decider.handle(m, c.id);
    if (out.record) {
      this.o.metrics.decisions.inc({ rule: out.record.rule ?? 'none', class: out.record.class });
      this.o.onDecision(out.record);
    }
    this.o.metrics.latency.observe(Number(process.hrtime.bigint() - t0) / 1e9);
    return out.reply;
  }
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
