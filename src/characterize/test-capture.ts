/* Known traffic for the tests of the characterisation routes and the dashboard's Characterise
 * page: capture files (raw IP pcap, pcap-write.ts), and a live UDP flow the daemon's flow table
 * knows (this process sends it; an agent's Connect line tells the daemon of its socket). */

import { createSocket } from 'node:dgram';
import { readdirSync } from 'node:fs';
import { pcapFile, udpPacket } from '../capture/pcap-write.js';
import { LineClient } from '../daemon/line-client.js';
import { socketOfDescriptor } from '../rsvp/connections.js';

/** Two UDP flows: port 5004, 1000-byte packets every 10 ms (100 kB/s) for `seconds`, with a
 * 10-packet burst after the first second; port 6000, 200-byte packets every 5 ms (40 kB/s). */
export function twoFlowCapture(seconds = 2): Buffer {
  const pkts: { t: number; p: Buffer }[] = [];
  const udp = (dport: number, ipLength: number) => udpPacket({ src: '10.1.0.1', dst: '10.1.0.2', sport: 4000, dport, payload: Buffer.alloc(ipLength - 28) });
  const video = udp(5004, 1000), voice = udp(6000, 200);
  for (let i = 0; i < seconds * 100; i++) pkts.push({ t: i / 100, p: video });
  for (let i = 0; i < 10; i++) pkts.push({ t: 1.0005 + i * 1e-5, p: video });
  for (let i = 0; i < seconds * 200; i++) pkts.push({ t: i / 200, p: voice });
  pkts.sort((a, b) => a.t - b.t);
  return pcapFile(pkts.map((x) => x.p), 1_700_000_000, pkts.map((x) => x.t));
}

export interface LiveUdpFlow { fd: number; lport: number; rport: number; key: string; close(): void }

/** A UDP socket of this process connected to a sink on 127.0.0.1, sending a `size`-byte IP
 * packet every 10 ms, and reported to the daemon at agentSocket as an agent would (Connect):
 * GET /v1/flows then lists (this pid, fd). */
export async function liveUdpFlow(agentSocket: string, size = 500): Promise<LiveUdpFlow> {
  const sink = createSocket('udp4');
  await new Promise<void>((r) => sink.bind(0, '127.0.0.1', r));
  const sender = createSocket('udp4');
  await new Promise<void>((r) => sender.connect(sink.address().port, '127.0.0.1', r));
  const lport = sender.address().port, rport = sink.address().port;
  // the sender's descriptor, as the kernel lists it
  let fd = -1;
  for (const n of readdirSync('/proc/self/fd').map(Number)) {
    const s = await socketOfDescriptor(process.pid, n);
    if (s?.proto === 'udp' && s.lport === lport && s.rport === rport) fd = n;
  }
  if (fd < 0) throw new Error('the sender\'s descriptor is not among this process\'s');
  const agent = new LineClient(agentSocket);
  agent.sock.write(`Connect 1 0 node ${fd} {2 127.0.0.1 ${rport}} {} {}\n`);
  await agent.next();
  const payload = Buffer.alloc(size - 28);
  const timer = setInterval(() => sender.send(payload), 10);
  return {
    fd, lport, rport, key: `udp 127.0.0.1:${lport} > 127.0.0.1:${rport}`,
    close() { clearInterval(timer); agent.sock.destroy(); sender.close(); sink.close(); },
  };
}
