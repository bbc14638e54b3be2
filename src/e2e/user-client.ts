/* Agent-protocol clients that run as another local user, for tests and benchmarks of what one
 * user can do to another: the daemon learns who is calling from the kernel (SO_PEERCRED), so
 * two users need two processes. This file is also the child program: run with a socket path,
 * it opens N connections and copies "index line" from stdin to connection index, and each
 * reply back to stdout as "index reply" (one line each, in the order they come). */

import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { LineSplitter } from '../protocol/lines.js';
import { start } from '../exec.js';
import { asUser, type TestUser } from './users.js';

const SELF = fileURLToPath(import.meta.url);

/** `conns` connections to an agent socket from a child process running as user u. The
 * directory holding the socket must be traversable by u. */
export class UserClient {
  readonly child: ChildProcessWithoutNullStreams;
  private readonly replies: (string | null)[][] = [];
  private readonly waiters: ((l: string | null) => void)[][] = [];
  private readonly ready: Promise<void>;

  constructor(u: TestUser, socket: string, readonly conns = 1) {
    const argv = asUser(u, [process.execPath, SELF, socket, String(conns)]);
    const c = start(argv, { stdio: ['pipe', 'pipe', 'pipe'], name: 'user client' });
    this.child = c.proc as ChildProcessWithoutNullStreams;
    for (let i = 0; i < conns; i++) { this.replies.push([]); this.waiters.push([]); }
    const lines = createInterface({ input: this.child.stdout });
    this.ready = new Promise((resolve, reject) => {
      lines.once('line', (l) => (l === 'ready' ? resolve() : reject(new Error(`user client: ${l} ${c.stderr}`))));
      void c.exited.then((e) => reject(c.failure(e)));
    });
    this.ready.catch(() => undefined);
    lines.on('line', (l) => {
      const sp = l.indexOf(' ');
      const i = Number(l.slice(0, sp));
      if (!Number.isInteger(i) || i < 0 || i >= conns) return;
      const text = l.slice(sp + 1);
      this.push(i, text === '\0closed' ? null : text);
    });
    this.child.once('exit', () => { for (let i = 0; i < conns; i++) this.push(i, null); });
  }

  /** The client's pid (setpriv execs node, so the same process). */
  get pid(): number {
    return this.child.pid!;
  }

  private push(i: number, l: string | null): void {
    const w = this.waiters[i]!.shift();
    if (w) w(l);
    else this.replies[i]!.push(l);
  }

  /** Sends request lines (without newlines) on connection i. */
  async send(lines: string[], i = 0): Promise<void> {
    await this.ready;
    this.child.stdin.write(lines.map((l) => `${i} ${l}\n`).join(''));
  }

  /** The next reply on connection i, or null once it closed. */
  next(i = 0): Promise<string | null> {
    const q = this.replies[i]!;
    if (q.length) return Promise.resolve(q[0] === null ? null : q.shift()!);
    return new Promise((r) => this.waiters[i]!.push(r));
  }

  /** Sends one request on connection i and waits for its reply. */
  async ask(line: string, i = 0): Promise<string | null> {
    await this.send([line], i);
    return this.next(i);
  }

  close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    const done = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.stdin.end();
    return done;
  }
}

/** The child: connections to argv[2], stdin and stdout as described at the top. */
async function child(socket: string, n: number): Promise<void> {
  const socks = await Promise.all(Array.from({ length: n }, (_, i) => new Promise<ReturnType<typeof connect>>((resolve, reject) => {
    const s = connect(socket, () => resolve(s));
    s.once('error', reject);
    const lines = new LineSplitter();
    s.on('data', (d: Buffer) => {
      let out = '';
      try {
        for (const l of lines.push(d)) out += `${i} ${l}\n`;
      } catch {
        s.destroy();
      }
      if (out) process.stdout.write(out);
    });
    s.on('close', () => process.stdout.write(`${i} \0closed\n`));
  })));
  process.stdout.write('ready\n');
  const input = createInterface({ input: process.stdin });
  input.on('line', (l) => {
    const sp = l.indexOf(' ');
    socks[Number(l.slice(0, sp))]?.write(`${l.slice(sp + 1)}\n`);
  });
  input.on('close', () => { for (const s of socks) s.destroy(); process.exit(0); });
}

if (process.argv[1] === SELF) {
  child(process.argv[2]!, Number(process.argv[3] ?? 1)).catch((e: Error) => {
    process.stdout.write(`error ${e.message}\n`);
    process.exit(1);
  });
}
