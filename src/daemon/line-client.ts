/* A line-oriented client of the agent socket, as an agent speaks it: for tests and benchmarks
 * that talk to a real daemon. next() resolves with each reply line in order, or null once the
 * daemon has closed the connection (and null ever after). */

import { connect, type Socket } from 'node:net';

export class LineClient {
  private buf = '';
  private waiters: ((l: string | null) => void)[] = [];
  private lines: (string | null)[] = [];
  readonly sock: Socket;
  constructor(path: string) {
    this.sock = connect(path);
    this.sock.setEncoding('latin1');
    this.sock.on('data', (d: string) => {
      this.buf += d;
      for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
        this.push(this.buf.slice(0, nl));
        this.buf = this.buf.slice(nl + 1);
      }
    });
    this.sock.on('close', () => this.push(null));
    this.sock.on('error', () => undefined);
  }
  private push(l: string | null): void {
    const w = this.waiters.shift();
    if (w) w(l);
    else this.lines.push(l);
  }
  next(): Promise<string | null> {
    if (this.lines.length) { const l = this.lines[0]!; if (l !== null) this.lines.shift(); return Promise.resolve(l); }
    return new Promise((r) => this.waiters.push((l) => { if (l === null) this.lines.push(null); r(l); }));
  }
}
