/* Capture files of known traffic for the tests of the characterisation route and the
 * dashboard's Characterise page (raw IP pcap, pcap-write.ts). */

import { pcapFile, udpPacket } from '../capture/pcap-write.js';

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
