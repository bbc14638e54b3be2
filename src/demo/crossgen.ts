/* The demonstration's cross-traffic generator (paper section 5: "back-to-back UDP packets
 * ... two seconds of load, then sleeps for two seconds"). It keeps the socket's send queue
 * full, so it sends as fast as its access link takes packets: the link's queue, not this
 * program, sets the rate.
 *
 *   node crossgen.js --to HOST:PORT [--on-ms 2000] [--off-ms 2000] [--cycles 4] [--size 1470]
 *
 * Prints one JSON line per burst: {"on": µs, "off": µs, "datagrams": n} (wall clock). */

import { createSocket } from 'node:dgram';
import { args, hostPort, nowUs, num, sleep, udpType } from './programs.js';

const o = args({ to: { type: 'string' }, 'on-ms': { type: 'string' }, 'off-ms': { type: 'string' }, cycles: { type: 'string' }, size: { type: 'string' } });
const to = hostPort(o.to, '--to');
const onMs = num(o['on-ms'], '--on-ms', 1, 2000);
const offMs = num(o['off-ms'], '--off-ms', 0, 2000);
const cycles = num(o.cycles, '--cycles', 1, 4);
const size = num(o.size, '--size', 1, 1470);

/** Datagrams handed to the kernel and not yet reported sent: enough to keep it busy. */
const WINDOW = 64;
const sock = createSocket(udpType(to.host));
sock.on('error', () => { /* a full queue drops; nothing to do */ });
const payload = Buffer.alloc(size, 0x78);

function burst(ms: number): Promise<number> {
  return new Promise((resolve) => {
    const end = performance.now() + ms;
    let inflight = 0, sent = 0, done = false;
    const pump = (): void => {
      while (!done && inflight < WINDOW) {
        if (performance.now() >= end) { done = true; break; }
        inflight++;
        sock.send(payload, to.port, to.host, () => { inflight--; sent++; pump(); });
      }
      if (done && inflight === 0) resolve(sent);
    };
    pump();
  });
}

for (let i = 0; i < cycles; i++) {
  const on = nowUs();
  const n = await burst(onMs);
  process.stdout.write(JSON.stringify({ on, off: nowUs(), datagrams: n }) + '\n');
  if (i < cycles - 1 || offMs > 0) await sleep(offMs);
}
sock.close();
