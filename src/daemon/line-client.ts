/* A line-oriented client of the agent socket, as an agent speaks it: for tests and benchmarks
 * that talk to a real daemon. next() resolves with each reply line in order, or null once the
 * daemon has closed the connection (and null ever after). */

import { connect, type Socket } from 'node:net';
import { LineSplitter } from '../protocol/lines.js';

export class LineClient {
  private readonly splitter = new LineSplitter();
  private waiters: ((l: string | null) => void)[] = [];
  private lines: (string | null)[] = [];
  readonly sock: Socket;
  constructor(path: string) {
    this.sock = connect(path);
    this.sock.on('data', (d: Buffer) => {
      let got: string[];
      try { got = this.splitter.push(d); } catch { this.sock.destroy(); return; }
      for (const l of got) this.push(l);
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
