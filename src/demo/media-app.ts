/* A video-conferencing-like application for the demonstration, and nothing more: it knows
 * nothing of qosd and never sets a mark. It sends "video" over UDP, frames at a fixed rate
 * whose sizes vary (a large key frame each group of pictures, the others around the mean,
 * each ±25 %), split into datagrams of at most 1,200 bytes, and opens a TCP "call control"
 * connection at a given moment. Each datagram starts with "QMD1", a sequence number, the
 * frame number and the send time, so a capture can match it on both sides.
 *
 *   node media-app.js --to HOST:PORT [--control HOST:PORT --control-at MS] [--duration S]
 *                     (an IPv6 HOST in brackets: [fd00:91:3::2]:5004)
 *                     [--fps 25] [--kbps 400] [--seed 1]
 *
 * Prints one JSON line at the end: datagrams, bytes, frames, control_setup_ms. */

import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { datagramsOf, FrameSizes } from './media-model.js';
import { args, hostPort, nowUs, num, sleep, udpType } from './programs.js';

const o = args({ to: { type: 'string' }, control: { type: 'string' }, 'control-at': { type: 'string' }, duration: { type: 'string' }, fps: { type: 'string' }, kbps: { type: 'string' }, seed: { type: 'string' } });
const to = hostPort(o.to, '--to');
const control = o.control ? hostPort(o.control, '--control') : null;
const controlAt = num(o['control-at'], '--control-at', 0, 0);
const durationMs = num(o.duration, '--duration', 0.1, 10) * 1000;
const fps = num(o.fps, '--fps', 1, 25);
const kbps = num(o.kbps, '--kbps', 8, 400);

const frames = new FrameSizes({ kbps, fps, seed: num(o.seed, '--seed', 0, 1) });

const sock = createSocket(udpType(to.host));
let seq = 0, bytes = 0, frameCount = 0, pending = 0;
let setupMs: number | null = null;

function sendFrame(n: number): void {
  for (const size of datagramsOf(frames.next(n))) {
    const b = Buffer.alloc(size);
    b.write('QMD1', 0, 'latin1');
    b.writeUInt32BE(seq++ >>> 0, 4);
    b.writeUInt32BE(n, 8);
    b.writeBigUInt64BE(BigInt(nowUs()), 12);
    pending++;
    sock.send(b, to.port, to.host, () => pending--);
    bytes += size;
  }
  frameCount++;
}

function openControl(): Promise<void> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const c = connect({ host: control!.host, port: control!.port });
    c.on('connect', () => {
      setupMs = Math.round((performance.now() - t0) * 1000) / 1000;
      c.write('CALL SETUP\n');
    });
    c.on('data', () => c.destroy());
    c.on('error', (e) => { process.stderr.write(`control connection: ${e.message}\n`); resolve(); });
    c.on('close', () => resolve());
  });
}

const start = performance.now();
const controlDone = control ? sleep(controlAt).then(openControl) : Promise.resolve();
for (let n = 0; ; n++) {
  const due = start + (n * 1000) / fps;
  if (due - start >= durationMs) break;
  await sleep(due - performance.now());
  sendFrame(n);
}
// The call control gets a few seconds past the stream to finish setting up.
let giveUp: NodeJS.Timeout | undefined;
await Promise.race([controlDone, new Promise<void>((r) => (giveUp = setTimeout(r, 5000)))]);
clearTimeout(giveUp);
while (pending > 0) await sleep(1); // every datagram handed to the kernel
sock.close();
process.stdout.write(JSON.stringify({ datagrams: seq, bytes, frames: frameCount, control_setup_ms: setupMs }) + '\n');
process.exit(0);
