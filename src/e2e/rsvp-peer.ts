/* A node of the RSVP transport tests: the transport opens its helper in the network namespace
 * of the process that calls it, so the test runs one of these per node (`ip netns exec NS node
 * rsvp-peer.js`) and drives it by JSON lines. In: {op: 'raw', intercept, families} | {op: 'udp',
 * role} | {op: 'send', p} | {op: 'counts'} | {op: 'close'}. Out: {ev: 'open'} | {ev: 'packet',
 * p} | {ev: 'counts', c} | {ev: 'warning', message} | {ev: 'error', message} | {ev: 'closed'}.
 * Message bytes travel as hex. */

import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { start, type Child } from '../exec.js';
import { openRaw, openUdp, type OutPacket, type Packet, type RsvpSocket } from '../rsvp/transport/index.js';

export const PEER = fileURLToPath(import.meta.url);

export type PeerCommand =
  | { op: 'raw'; intercept: boolean; families?: (4 | 6)[] }
  | { op: 'udp'; role: 'host' | 'router' }
  | { op: 'send'; p: Omit<OutPacket, 'bytes'> & { hex: string } }
  | { op: 'counts' }
  | { op: 'close' };
export type PeerPacket = Omit<Packet, 'bytes'> & { hex: string };
export type PeerEvent =
  | { ev: 'open' } | { ev: 'closed' } | { ev: 'packet'; p: PeerPacket }
  | { ev: 'counts'; c: ReturnType<RsvpSocket['counts']> } | { ev: 'warning' | 'error'; message: string };

/** A peer started in namespace ns, its events collected. */
export class Peer {
  readonly child: Child;
  readonly events: PeerEvent[] = [];

  constructor(readonly ns: string) {
    this.child = start([process.execPath, PEER], { netns: ns, stdio: ['pipe', 'pipe', 'pipe'], name: `rsvp peer in ${ns}` });
    createInterface({ input: this.child.proc.stdout! }).on('line', (l) => this.events.push(JSON.parse(l) as PeerEvent));
  }

  cmd(c: PeerCommand): void {
    this.child.proc.stdin!.write(JSON.stringify(c) + '\n');
  }

  /** The first event (after `from`) that pred takes; throws after ms with what came. */
  async waitFor<E extends PeerEvent>(pred: (e: PeerEvent) => e is E, ms = 5000, from = 0): Promise<E> {
    for (const end = Date.now() + ms; Date.now() < end;) {
      const e = this.events.slice(from).find(pred);
      if (e) return e;
      if (!this.child.running) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`${this.child.name}: no such event within ${ms} ms; events ${JSON.stringify(this.events)}; stderr ${this.child.stderr}`);
  }

  packets(): PeerPacket[] {
    return this.events.flatMap((e) => (e.ev === 'packet' ? [e.p] : []));
  }

  async open(c: PeerCommand): Promise<this> {
    this.cmd(c);
    const e = await this.waitFor((e): e is PeerEvent => e.ev === 'open' || e.ev === 'error', 15_000);
    if (e.ev === 'error') throw new Error(`${this.child.name}: ${e.message}`);
    return this;
  }

  async counts(): Promise<ReturnType<RsvpSocket['counts']>> {
    const from = this.events.length;
    this.cmd({ op: 'counts' });
    return (await this.waitFor((e): e is Extract<PeerEvent, { ev: 'counts' }> => e.ev === 'counts', 5000, from)).c;
  }
}

async function main(): Promise<void> {
  const say = (e: PeerEvent) => process.stdout.write(JSON.stringify(e) + '\n');
  process.on('warning', (w) => say({ ev: 'warning', message: w.message }));
  let s: RsvpSocket | null = null;
  for await (const line of createInterface({ input: process.stdin })) {
    const c = JSON.parse(line) as PeerCommand;
    try {
      if (c.op === 'raw' || c.op === 'udp') {
        s = c.op === 'raw' ? await openRaw({ intercept: c.intercept, families: c.families }) : await openUdp({ role: c.role });
        s.onPacket(({ bytes, ...p }) => say({ ev: 'packet', p: { ...p, hex: Buffer.from(bytes).toString('hex') } }));
        say({ ev: 'open' });
      } else if (c.op === 'send') {
        const { hex, ...p } = c.p;
        s!.send({ ...p, bytes: Buffer.from(hex, 'hex') });
      } else if (c.op === 'counts') say({ ev: 'counts', c: s!.counts() });
      else {
        await s?.close();
        say({ ev: 'closed' });
      }
    } catch (e) {
      say({ ev: 'error', message: (e as Error).message });
    }
  }
  await s?.close();
}

if (process.argv[1] === PEER) void main();
