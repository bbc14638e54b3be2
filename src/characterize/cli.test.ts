/* `qos characterize` end to end: a capture file of known traffic (written here, and converted
 * to pcapng by editcap), the JSON a program reads, the plot, and clear failures. A capture
 * taken by tcpdump of a real sender is in src/e2e/characterize.test.ts. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QOS_CLI } from '../daemon/child.js';
import { PACKAGE_ROOT } from '../paths.js';
import { requireChromium, requireTools } from '../prerequisites.js';

const dir = mkdtempSync(join(tmpdir(), 'qosd-char-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

/** A pcap (nanosecond, Ethernet) of UDP packets: [seconds, IP length, destination port]. */
function pcap(pkts: [number, number, number][]): Buffer {
  const h = Buffer.alloc(24);
  h.writeUInt32LE(0xa1b23c4d, 0); h.writeUInt16LE(2, 4); h.writeUInt16LE(4, 6); h.writeUInt32LE(65535, 16); h.writeUInt32LE(1, 20);
  const recs = pkts.map(([t, len, dport]) => {
    const ip = Buffer.alloc(28); // headers only, as a short snap length captures them
    ip[0] = 0x45; ip.writeUInt16BE(len, 2); ip[8] = 64; ip[9] = 17;
    Buffer.from([10, 1, 0, 1]).copy(ip, 12); Buffer.from([10, 1, 0, 2]).copy(ip, 16);
    ip.writeUInt16BE(4000, 20); ip.writeUInt16BE(dport, 22); ip.writeUInt16BE(Math.max(8, len - 20), 24);
    const eth = Buffer.alloc(14); eth.writeUInt16BE(0x0800, 12);
    const frame = Buffer.concat([eth, ip]);
    const r = Buffer.alloc(16);
    const ns = BigInt(Math.round(t * 1e9));
    r.writeUInt32LE(Number(ns / 1_000_000_000n), 0); r.writeUInt32LE(Number(ns % 1_000_000_000n), 4);
    r.writeUInt32LE(frame.length, 8); r.writeUInt32LE(Math.max(len + 14, frame.length), 12);
    return Buffer.concat([r, frame]);
  });
  return Buffer.concat([h, ...recs]);
}

const qos = (...args: string[]) => spawnSync(process.execPath, [QOS_CLI, 'characterize', ...args], { encoding: 'utf8', timeout: 60_000 });

// port 5004: 1000-byte packets every 10 ms (100 kB/s) with a 10-packet burst at 1 s;
// port 6000: 200-byte packets every 5 ms (40 kB/s)
const pkts: [number, number, number][] = [];
for (let i = 0; i < 200; i++) pkts.push([1000 + i / 100, 1000, 5004]);
for (let i = 0; i < 10; i++) pkts.push([1001.0005 + i * 1e-5, 1000, 5004]);
for (let i = 0; i < 300; i++) pkts.push([1000 + i / 200, 200, 6000]);
pkts.sort((a, b) => a[0] - b[0]);
const file = join(dir, 'two.pcap');
writeFileSync(file, pcap(pkts));

interface Out { unit: string; flows: { key: string; packets: number; bytes: number; duration_s: number; mean_rate_Bps: number; peak_rate_Bps: number; M: number; m: number; curve: { r_Bps: number; b_bytes: number }[]; knee: { r_Bps: number; b_bytes: number }; tspec: Record<string, number>; minimum_policed_size: number }[] }

test('--json: every flow with its statistics, curve and knee; --flow picks one; given rates are used as given', () => {
  const r = qos(file, '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as Out;
  assert.deepEqual(j.flows.map((f) => [f.key, f.packets, f.bytes, f.M, f.m]), [
    ['udp 10.1.0.1:4000 > 10.1.0.2:5004', 210, 210_000, 1000, 1000],
    ['udp 10.1.0.1:4000 > 10.1.0.2:6000', 300, 60_000, 200, 200],
  ]);
  const [video] = j.flows;
  assert.equal(video!.curve.length, 32);
  assert.ok(video!.curve.every((p, i) => i === 0 || (p.r_Bps > video!.curve[i - 1]!.r_Bps && p.b_bytes <= video!.curve[i - 1]!.b_bytes)), 'rates up, buckets down');
  assert.ok(video!.peak_rate_Bps >= 1_000_000, `the burst: 11 kB within 10 ms, peak ${video!.peak_rate_Bps}`);
  assert.ok(video!.curve.at(-1)!.b_bytes >= 10_000, 'even at the peak rate the 11-packet burst needs about its size');
  assert.deepEqual(Object.keys(video!.tspec).sort(), ['M', 'b', 'm', 'p', 'r']);

  const one = JSON.parse(qos(file, '--json', '--flow', 'dport=6000', '--rates', '40kB,320kbit,80000,1MB').stdout) as Out;
  assert.equal(one.flows.length, 1);
  assert.deepEqual(one.flows[0]!.curve.map((p) => p.r_Bps), [40_000, 40_000, 80_000, 1_000_000]);
  assert.deepEqual(one.flows[0]!.curve.map((p) => p.b_bytes), [200, 200, 200, 200], 'a constant rate needs one packet of bucket at its rate');
  const byKey = JSON.parse(qos(file, '--json', '--flow', 'udp 10.1.0.1:4000 > 10.1.0.2:6000', '--count', '--rates', '200').stdout) as Out;
  assert.equal(byKey.unit, 'packets');
  assert.deepEqual(byKey.flows[0]!.curve, [{ r_Bps: 200, b_bytes: 1 }]);
});

test('pcapng of the same traffic gives the same result', () => {
  requireTools('editcap');
  const ng = join(dir, 'two.pcapng');
  assert.equal(spawnSync('editcap', ['-F', 'pcapng', file, ng]).status, 0);
  const a = JSON.parse(qos(file, '--json').stdout) as Out & { file?: string; capture: { format?: string } };
  const b = JSON.parse(qos(ng, '--json').stdout) as Out & { file?: string; capture: { format?: string } };
  assert.deepEqual([a.capture.format, b.capture.format], ['pcap', 'pcapng']);
  delete a.file; delete b.file; delete a.capture.format; delete b.capture.format;
  assert.deepEqual(b, a);
});

test('the plot: one SVG with the curve, its knee marked, and the traffic against the bucket', () => {
  const svg = join(dir, 'plot.svg');
  const r = qos(file, '--flow', 'dport=5004', '--plot', svg);
  assert.equal(r.status, 0, r.stderr);
  const text = readFileSync(svg, 'utf8');
  assert.match(text, /least bucket b for each rate r \(knee/);
  assert.match(text, /cumulative traffic against the token bucket/);
  assert.equal((text.match(/<circle [^>]*r="5"/g) ?? []).length, 1, 'one knee marker');
  assert.match(r.stdout, /<- knee/);
});

test('bad captures and bad options: a clear message and the exit code that says which', () => {
  const cut = join(dir, 'cut.pcap');
  writeFileSync(cut, readFileSync(file).subarray(0, 1000));
  let r = qos(cut);
  assert.equal(r.status, 65, r.stderr);
  assert.match(r.stderr, /cut\.pcap: capture, byte \d+: file ends inside a record/);
  const junk = join(dir, 'junk.pcap');
  writeFileSync(junk, 'not a capture at all, just text\n');
  r = qos(junk);
  assert.match(r.stderr, /not a pcap or pcapng file/);
  assert.notEqual(r.status, 0);
  r = qos(join(dir, 'missing.pcap'));
  assert.equal(r.status, 66);
  assert.match(r.stderr, /missing\.pcap/);
  r = qos(file, '--rates', '1.5Mbps');
  assert.equal(r.status, 64);
  assert.match(r.stderr, /rate "1\.5Mbps"/);
  r = qos(file, '--flow', 'colour=red');
  assert.equal(r.status, 64);
  assert.match(r.stderr, /--flow: "colour=red" is not field=value/);
  r = qos(file, '--flow', 'dport=9');
  assert.equal(r.status, 66);
  assert.match(r.stderr, /no packet matches --flow/);
});

test('the plot as PNG, rendered by Chromium', () => {
  requireChromium();
  const png = join(dir, 'plot.png');
  const r = qos(file, '--flow', 'dport=5004', '--plot', png);
  assert.equal(r.status, 0, r.stderr);
  const b = readFileSync(png);
  assert.deepEqual([...b.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG file');
  assert.equal(b.readUInt32BE(16), 800, 'as wide as the SVG');
  assert.equal(qos(file, '--plot', join(dir, 'plot.gif')).status, 64, 'only .svg or .png');
});

test('a capture taken on a TSO sender (IPv4 Total Length 0): each packet counts as what was captured of it, and the run reports the flow instead of failing', () => {
  // before: every packet 0 bytes, the flow's rates 0, and rateGrid(0, 0) threw a RangeError (exit 70)
  const tso = join(dir, 'tso.pcap');
  writeFileSync(tso, pcap([[1000, 0, 7000], [1000.01, 0, 7000], [1000.02, 0, 7000]]));
  const r = qos(tso, '--json');
  assert.equal(r.status, 0, r.stderr);
  const [f] = (JSON.parse(r.stdout) as Out).flows;
  assert.deepEqual([f!.key, f!.packets, f!.bytes], ['udp 10.1.0.1:4000 > 10.1.0.2:7000', 3, 3 * 28], 'the 28 captured bytes of each (its IP and UDP headers)');
  assert.ok(f!.curve.length > 0 && f!.knee.r_Bps > 0);
});

const FIXTURES = join(PACKAGE_ROOT, 'test/fixtures/captures'); // README.md there: origin and licence

test('a record with an impossible time: a warning on stderr naming its offset, counted damaged in the JSON, the rest characterised (exit 0)', () => {
  const r = qos(join(FIXTURES, 'timestamp_invalid_micro.pcap'), '--json');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /^qos: warning: \S+timestamp_invalid_micro\.pcap: capture, byte 120: record 2: sub-second time 1000000 is out of range \(µs\): skipped as damaged$/m);
  assert.match(r.stderr, /byte 212: record 3: sub-second time 2147483648 is out of range/);
  const out = JSON.parse(r.stdout) as Out & { capture: Record<string, unknown>; warnings: string[] };
  assert.deepEqual(out.capture, { format: 'pcap', records: 3, ip_packets: 1, ip_bytes: 60, first_s: '1418145369.999999000', last_s: '1418145369.999999000', not_ip: 0, damaged: 2, skipped: {} });
  assert.equal(out.warnings.length, 2);
  assert.equal(out.flows[0]!.packets, 1);
});

test('link types not read: skipped and counted by link type in --json (a pcapng of an 802.11 and an Ethernet interface, merged by mergecap); with nothing else, exit 66 saying so', () => {
  requireTools('mergecap');
  const merged = join(dir, 'merged.pcapng');
  const m = spawnSync('mergecap', ['-F', 'pcapng', '-w', merged, join(FIXTURES, 'ieee802.11_htc.pcap'), join(FIXTURES, 'rsvp_cap.pcap')], { encoding: 'utf8' });
  assert.equal(m.status, 0, m.stderr);
  let r = qos(merged, '--json');
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Out & { capture: { records: number; skipped: Record<string, number> } };
  assert.deepEqual([out.capture.records, out.capture.skipped], [2, { 127: 1 }]);
  assert.equal(out.flows.length, 1);
  assert.match(out.flows[0]!.key, /^ip46 /, 'the RSVP message behind the VLAN tag');
  assert.match(r.stderr, /link type 127 \(radiotap 802\.11\) is not one qosd reads/);
  r = qos(merged);
  assert.match(r.stdout, /merged\.pcapng: pcapng, 2 records: 1 IP packet \(\d+ B\) from \S+ to \S+; 1 of link type 127 \(radiotap 802\.11\) skipped/);
  r = qos(join(FIXTURES, 'ieee802.11_htc.pcap'));
  assert.equal(r.status, 66);
  assert.match(r.stderr, /ieee802\.11_htc\.pcap: no IP packet \(1 record: 1 of link type 127 \(radiotap 802\.11\) skipped\)/);
});
