/* The traffic of the TCP cheating experiment (bench/tcp-cheat.ts, e2e/tcp-cheat.test.ts):
 * ordinary programs, one per role, that know nothing of the cheat.
 *
 *   node tcp-cheat-traffic.js recv --port P --seconds S
 *       takes one TCP connection, reads as fast as it can, and S seconds after the first byte
 *       prints {"bytes":N,"seconds":S} (the goodput of that window); reads on until killed
 *   node tcp-cheat-traffic.js send --to HOST:PORT --from-port P
 *       connects from port P (the 5-tuple the cheat is told), prints "connected", and on a
 *       line "go" on its stdin writes as fast as the connection takes, until a line "stop" or
 *       until killed
 *   node tcp-cheat-traffic.js flood --to HOST:PORT --rate BYTES/S [--size N]
 *       UDP datagrams of N bytes (default 1200) at that rate, until killed: cross traffic
 *   node tcp-cheat-traffic.js udpsink --port P
 *       reads and drops datagrams on port P (the flood's destination, so that it draws no ICMP)
 *
 * Each prints "ready" (recv, udpsink, flood) once it can be used. */

import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';
import { args, die, hostPort, num } from '../demo/programs.js';

const mode = process.argv[2];
process.argv.splice(2, 1);

const say = (line: string) => process.stdout.write(`${line}\n`);
/** A required option's value. */
const need = (v: unknown, what: string): string => (typeof v === 'string' ? v : die(`${mode} needs ${what}`));

if (mode === 'recv') {
  const o = args({ port: { type: 'string' }, seconds: { type: 'string' } });
  const port = num(need(o.port, '--port'), '--port', 1, 0);
  const seconds = num(o.seconds as string | undefined, '--seconds', 0.1, 3);
  let taken = false;
  const srv = createServer((s) => {
    if (taken) { s.destroy(); return; }
    taken = true;
    srv.close();
    say('accepted');
    let bytes = 0;
    let first = 0;
    s.on('data', (d: Buffer) => {
      if (!first) {
        first = performance.now();
        setTimeout(() => {
          say(JSON.stringify({ bytes, seconds: (performance.now() - first) / 1000 }));
          // the connection stays open (the sender's TCP state can still be read) until killed
        }, seconds * 1000);
      }
      bytes += d.length;
    });
    s.on('error', () => undefined);
  });
  srv.listen(port, () => say('ready'));
} else if (mode === 'send') {
  const o = args({ to: { type: 'string' }, 'from-port': { type: 'string' } });
  const to = hostPort(need(o.to, '--to'), '--to');
  const localPort = num(need(o['from-port'], '--from-port'), '--from-port', 1, 0);
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const s = connect({ host: to.host, port: to.port, localPort }, () => say('connected'));
  s.on('error', (e) => die(`connection: ${e.message}`));
  let writing = false;
  const pump = () => { while (writing && s.write(chunk)); };
  s.on('drain', pump);
  process.stdin.setEncoding('utf8').on('data', (d: string) => {
    if (d.includes('go')) { writing = true; pump(); }
    if (d.includes('stop')) writing = false; // what is written is sent; nothing more
  });
} else if (mode === 'flood') {
  const o = args({ to: { type: 'string' }, rate: { type: 'string' }, size: { type: 'string' } });
  const to = hostPort(need(o.to, '--to'), '--to');
  const rate = num(need(o.rate, '--rate'), '--rate', 1, 0);
  const size = num(o.size as string | undefined, '--size', 1, 1200);
  const sock = createSocket('udp4');
  const d = Buffer.alloc(size, 0x78);
  const t0 = performance.now();
  let sent = 0;
  // every 5 ms, what the rate owes since the start: a steady rate whatever the timer's lateness
  setInterval(() => {
    const owed = Math.floor(((performance.now() - t0) / 1000) * rate / size) - sent;
    for (let i = 0; i < Math.min(owed, 1000); i++) sock.send(d, to.port, to.host);
    sent += Math.max(0, owed);
  }, 5);
  sock.on('error', () => undefined); // a full queue (ENOBUFS) is what cross traffic is for
  say('ready');
} else if (mode === 'udpsink') {
  const o = args({ port: { type: 'string' } });
  const sock = createSocket('udp4');
  sock.on('message', () => undefined);
  sock.bind(num(need(o.port, '--port'), '--port', 1, 0), () => say('ready'));
} else {
  die(`the first argument is recv, send, flood or udpsink, not "${mode ?? ''}"`);
}
