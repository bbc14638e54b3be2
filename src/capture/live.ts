/* Live capture: `tcpdump -U --immediate-mode -w -` spawned with an argument vector (optionally inside a
 * network namespace), its pcap stream decoded as it arrives (pcap.ts). The capture is
 * running once start() resolves, so nothing sent after that is missed. */

import { spawn, type ChildProcess } from 'node:child_process';
import { QosError } from '../errors.js';
import { PcapReader, type Packet } from './pcap.js';

export interface CaptureOptions {
  iface: string;
  /** a tcpdump (BPF) filter expression, as one argument */
  filter: string;
  /** run tcpdump inside this network namespace */
  netns?: string;
  /** bytes kept of each packet (default 128: headers and the start of the payload) */
  snaplen?: number;
  /** also given every chunk of the pcap stream as it comes (to keep the capture in a file) */
  tee?: (chunk: Buffer) => void;
}

export class LiveCapture {
  private proc!: ChildProcess;
  private readonly reader: PcapReader;
  private stderr = '';
  private error: Error | null = null;
  private exited!: Promise<void>;

  constructor(private readonly o: CaptureOptions, onPacket: (p: Packet) => void) {
    this.reader = new PcapReader(onPacket);
  }

  /** Spawns tcpdump and resolves once it is listening. */
  async start(): Promise<this> {
    // --immediate-mode: without it libpcap hands packets over a block at a time, and those
    // in the last, unfinished block (up to a second's worth) are lost when tcpdump stops.
    const argv = ['tcpdump', '-U', '--immediate-mode', '-w', '-', '-n', '-s', String(this.o.snaplen ?? 128), '--time-stamp-precision=nano', '-i', this.o.iface, this.o.filter];
    const full = this.o.netns ? ['ip', 'netns', 'exec', this.o.netns, ...argv] : argv;
    this.proc = spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (d: Buffer) => {
      if (this.error) return;
      try { this.o.tee?.(d); this.reader.push(d); } catch (e) { this.error = e as Error; }
    });
    this.exited = new Promise((resolve) => this.proc.once('close', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new QosError('QOS_ERR_ENVIRONMENT', `tcpdump did not start on ${this.o.iface}: ${this.stderr.trim()}`)), 10_000);
      this.proc.stderr!.on('data', (d: Buffer) => {
        this.stderr += d;
        if (this.stderr.includes('listening on')) { clearTimeout(timer); resolve(); }
      });
      this.proc.once('error', (e) => { clearTimeout(timer); reject(new QosError('QOS_ERR_ENVIRONMENT', `tcpdump: ${e.message}`)); });
      this.proc.once('exit', (code) => { clearTimeout(timer); reject(new QosError('QOS_ERR_ENVIRONMENT', `tcpdump exited (${code}) on ${this.o.iface}: ${this.stderr.trim()}`)); });
    });
    return this;
  }

  /** Stops tcpdump, reads what it still had, and throws if the stream was bad. */
  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGINT');
    await this.exited;
    if (this.error) throw this.error;
    this.reader.end();
  }

  /** Kills tcpdump without reading further (on error paths). */
  kill(): void {
    if (this.proc && this.proc.exitCode === null) this.proc.kill('SIGKILL');
  }
}
