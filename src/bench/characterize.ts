/* `qos bench characterize`: how fast b(r) is computed, and that streaming a capture does not
 * grow memory with its length.
 *
 * - offline_packet_rates_per_s: packets x rates per second of the one-pass b(r) computation
 *   (BucketCurve.addAll) over N synthetic packets (on/off bursts of random sizes) and R rates;
 *   the median of a few runs.
 * - online_packets_per_s: the on-line estimator (OnlineLbap.add) over the same packets.
 * - peak_rss_mb: `qos characterize` (both passes, R rates) over a generated pcap file of
 *   `filePackets` packets, in a child process, its peak resident memory; the same for a file
 *   four times as long, to show it does not grow with the trace (`peak_rss_mb_4x`). */

import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BucketCurve, rateGrid } from '../characterize/lbap.js';
import { OnlineLbap } from '../characterize/online.js';
import { runSync } from '../exec.js';
import type { Target } from './agent.js';
import { medianF } from './helpers.js';

export interface CharacterizeBenchOptions { packets: number; rates: number; runs: number; filePackets: number; progress?: (m: string) => void }

export interface CharacterizeBenchResult {
  offline_packet_rates_per_s: number;
  offline_s: number;
  online_packets_per_s: number;
  peak_rss_mb: number;
  peak_rss_mb_4x: number;
  file_packets_per_s: number;
  targets: { offline_packet_rates_per_s: Target; online_packets_per_s: Target; rss_independent_of_length: Target };
  setup: { packets: number; rates: number; runs: number; file_packets: number; cpus: number; node: string };
}


/** Synthetic traffic: on/off bursts (a few packets back to back, gaps of up to 2 ms), sizes 64-1500. */
function traffic(n: number): { t: Float64Array; s: Float64Array } {
  const t = new Float64Array(n), s = new Float64Array(n);
  let now = 0, seed = 12345;
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    now += (seed & 7) === 0 ? ((seed >>> 8) & 2047) * 1e-6 : 0;
    t[i] = now;
    s[i] = 64 + ((seed >>> 16) % 1437);
  }
  return { t, s };
}

/** Writes a pcap of n UDP packets (headers only) of the synthetic traffic, streaming. */
function writePcap(file: string, n: number): void {
  const fd = openSync(file, 'w');
  try {
    const h = Buffer.alloc(24);
    h.writeUInt32LE(0xa1b23c4d, 0); h.writeUInt16LE(2, 4); h.writeUInt16LE(4, 6); h.writeUInt32LE(96, 16); h.writeUInt32LE(1, 20);
    writeSync(fd, h);
    const rec = 16 + 14 + 28, per = 4096;
    const buf = Buffer.alloc(rec * per);
    let now = 0n, seed = 12345, k = 0;
    for (let i = 0; i < n; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      if ((seed & 7) === 0) now += BigInt((seed >>> 8) & 2047) * 1000n;
      const len = 64 + ((seed >>> 16) % 1437);
      const o = k * rec;
      buf.writeUInt32LE(Number(now / 1_000_000_000n), o); buf.writeUInt32LE(Number(now % 1_000_000_000n), o + 4);
      buf.writeUInt32LE(42, o + 8); buf.writeUInt32LE(len + 14, o + 12);
      buf.writeUInt16BE(0x0800, o + 16 + 12);
      const ip = o + 30;
      buf[ip] = 0x45; buf.writeUInt16BE(len, ip + 2); buf[ip + 8] = 64; buf[ip + 9] = 17;
      buf.writeUInt32BE(0x0a000001, ip + 12); buf.writeUInt32BE(0x0a000002, ip + 16);
      buf.writeUInt16BE(4000, ip + 20); buf.writeUInt16BE(5004, ip + 22); buf.writeUInt16BE(len - 20, ip + 24);
      if (++k === per) { writeSync(fd, buf); k = 0; }
    }
    if (k) writeSync(fd, buf.subarray(0, k * rec));
  } finally {
    closeSync(fd);
  }
}

/** `qos characterize` over a file in a child process: its peak RSS (MB) and run time (s). */
function characterizeChild(file: string, rates: number): { rssMb: number; seconds: number } {
  const offline = fileURLToPath(new URL('../characterize/offline.js', import.meta.url));
  const code = `const { characterizeFile } = await import(${JSON.stringify(offline)});
const t0 = performance.now();
const r = await characterizeFile(${JSON.stringify(file)}, { grid: ${rates} });
if (r.flows.length !== 1) throw new Error('expected one flow');
process.stdout.write(JSON.stringify({ rss: process.resourceUsage().maxRSS / 1024, s: (performance.now() - t0) / 1000 }));`;
  const r = runSync([process.execPath, '--input-type=module', '-e', code], { timeoutMs: 600_000, name: 'the characterize child' });
  const j = JSON.parse(r.stdout) as { rss: number; s: number };
  return { rssMb: Math.round(j.rss * 10) / 10, seconds: j.s };
}

export async function benchCharacterize(o: CharacterizeBenchOptions): Promise<CharacterizeBenchResult> {
  const say = o.progress ?? (() => undefined);
  say(`generating ${o.packets} packets`);
  const { t, s } = traffic(o.packets);
  const rates = rateGrid(1e5, 1e8, o.rates);
  const offline: number[] = [], online: number[] = [];
  for (let run = 0; run < o.runs; run++) {
    const c = new BucketCurve(rates);
    let t0 = performance.now();
    c.addAll(t, s);
    offline.push((performance.now() - t0) / 1000);
    const on = new OnlineLbap({ windowS: 10 });
    t0 = performance.now();
    for (let i = 0; i < o.packets; i++) on.add(t[i]!, s[i]!);
    online.push((performance.now() - t0) / 1000);
    say(`run ${run + 1}/${o.runs}: off-line ${offline.at(-1)!.toFixed(2)} s, on-line ${online.at(-1)!.toFixed(2)} s`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'qosd-bench-char-'));
  try {
    const small = join(dir, 'a.pcap'), big = join(dir, 'b.pcap');
    say(`writing captures of ${o.filePackets} and ${4 * o.filePackets} packets`);
    writePcap(small, o.filePackets);
    writePcap(big, 4 * o.filePackets);
    const a = characterizeChild(small, o.rates);
    const b = characterizeChild(big, o.rates);
    say(`qos characterize: ${a.rssMb} MB for ${o.filePackets} packets, ${b.rssMb} MB for ${4 * o.filePackets}`);
    const offS = medianF(offline);
    const pr = Math.round((o.packets * o.rates) / offS);
    const onPps = Math.round(o.packets / medianF(online));
    return {
      offline_packet_rates_per_s: pr,
      offline_s: Math.round(offS * 1000) / 1000,
      online_packets_per_s: onPps,
      peak_rss_mb: a.rssMb,
      peak_rss_mb_4x: b.rssMb,
      file_packets_per_s: Math.round((2 * 4 * o.filePackets) / b.seconds), // two passes
      targets: {
        offline_packet_rates_per_s: { value: pr, limit: 100e6, ok: pr >= 100e6 },
        online_packets_per_s: { value: onPps, limit: 2e6, ok: onPps >= 2e6 },
        // a 4x longer trace may not need more than 10 % (and 20 MB) more memory
        rss_independent_of_length: { value: b.rssMb, limit: Math.round(Math.max(a.rssMb * 1.1, a.rssMb + 20)), ok: b.rssMb <= Math.max(a.rssMb * 1.1, a.rssMb + 20) },
      },
      setup: { packets: o.packets, rates: o.rates, runs: o.runs, file_packets: o.filePackets, cpus: cpus().length, node: process.version },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
