/* Live capture: `tcpdump -U --immediate-mode -w -` spawned with an argument vector (optionally inside a
 * network namespace), its pcap stream decoded as it arrives (pcap.ts). The capture is
 * running once start() resolves, so nothing sent after that is missed. */

import { start, type Child } from '../exec.js';
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
  private proc!: Child;
  private readonly reader: PcapReader;
  private error: Error | null = null;

  constructor(private readonly o: CaptureOptions, onPacket: (p: Packet) => void) {
    this.reader = new PcapReader(onPacket);
  }

  /** Spawns tcpdump and resolves once it is listening. */
  async start(): Promise<this> {
    // --immediate-mode: without it libpcap hands packets over a block at a time, and those
    // in the last, unfinished block (up to a second's worth) are lost when tcpdump stops.
    const argv = ['tcpdump', '-U', '--immediate-mode', '-w', '-', '-n', '-s', String(this.o.snaplen ?? 128), '--time-stamp-precision=nano', '-i', this.o.iface, this.o.filter];
    this.proc = start(argv, { netns: this.o.netns, pkg: 'tcpdump', name: `tcpdump on ${this.o.iface}` });
    this.proc.proc.stdout!.on('data', (d: Buffer) => {
      if (this.error) return;
      try { this.o.tee?.(d); this.reader.push(d); } catch (e) { this.error = e as Error; }
    });
    await this.proc.until('listening on', 10_000);
    return this;
  }

  /** Stops tcpdump, reads what it still had, and throws if the stream was bad. */
  async stop(): Promise<void> {
    await this.proc.stop('SIGINT');
    if (this.error) throw this.error;
    this.reader.end();
  }

  /** Kills tcpdump without reading further (on error paths). */
  kill(): void {
    this.proc?.kill();
  }
}
