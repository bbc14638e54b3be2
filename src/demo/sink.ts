/* The demonstration's receiving host: takes the media datagrams and the cross traffic
 * (discarding them: measurement is by packet capture) and answers call-control connections,
 * over IPv4 and IPv6 alike.
 *
 *   node sink.js [--udp PORT]... [--tcp PORT]
 *
 * Prints "ready" once listening; runs until killed. */

import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { args, die } from './programs.js';

const o = args({ udp: { type: 'string', multiple: true }, tcp: { type: 'string' } });
const port = (s: string) => (/^\d{1,5}$/.test(s) && Number(s) > 0 && Number(s) < 65536 ? Number(s) : die(`bad port "${s}"`));

const waits: Promise<void>[] = [];
for (const p of (o.udp as string[] | undefined) ?? []) {
  // An IPv6 socket on :: that also takes IPv4 (as mapped addresses): one sink for both families.
  const s = createSocket({ type: 'udp6', ipv6Only: false });
  s.on('message', () => {});
  waits.push(new Promise((r) => s.bind(port(p), r)));
}
if (typeof o.tcp === 'string') {
  const srv = createServer((c) => {
    c.on('data', () => c.write('OK\n'));
    c.on('error', () => {});
  });
  waits.push(new Promise((r) => srv.listen(port(o.tcp as string), r)));
}
await Promise.all(waits);
process.stdout.write('ready\n');
