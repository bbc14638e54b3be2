/* `qos characterize` on a capture tcpdump took of a real sender: python3 in the client
 * namespace sends UDP at a steady pace with one back-to-back burst; the curve qosd prints is
 * checked against the definition of b(r) computed here from tshark's reading of the same
 * file (frame times and IP lengths), and against what the sender did. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { bucketByDefinition } from '../characterize/lbap.js';
import { e2eUnavailable, QOS, sh, Testbed } from './harness.js';

const skip: string | false = e2eUnavailable() ?? false;
let tb: Testbed;

before(() => { if (!skip) tb = new Testbed(); });
after(() => { if (!skip) tb.cleanup(); });

test('a real capture: the curve is the definition computed from tshark\'s reading of the file, and shows the burst', { skip }, async () => {
  const cap = await tb.capture('udp and dst port 7401');
  // 100 datagrams of 1000 bytes (IP 1028) every 10 ms, and 8 more back to back after the 50th
  const py = `import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor i in range(100):\n  s.sendto(b'x' * 1000, ('${tb.serverIp}', 7401))\n  if i == 50:\n    for j in range(8): s.sendto(b'y' * 1000, ('${tb.serverIp}', 7401))\n  time.sleep(0.01)\n`;
  const r = tb.inClient(['python3', '-c', py]);
  assert.equal(r.status, 0, r.stderr);
  const seen = await cap.packets();
  assert.equal(seen.length, 108, 'tshark sees every datagram');

  const out = sh([process.execPath, QOS, 'characterize', cap.file, '--json', '--flow', 'dport=7401', '--grid', '16']);
  assert.equal(out.status, 0, out.stderr);
  const j = JSON.parse(out.stdout) as { flows: { packets: number; bytes: number; M: number; m: number; peak_rate_Bps: number; curve: { r_Bps: number; b_bytes: number }[]; knee: { r_Bps: number; b_bytes: number } }[] };
  assert.equal(j.flows.length, 1);
  const f = j.flows[0]!;
  assert.deepEqual([f.packets, f.bytes, f.M, f.m], [108, 108 * 1028, 1028, 1028]);

  const rows = sh(['tshark', '-r', cap.file, '-T', 'fields', '-e', 'frame.time_epoch', '-e', 'ip.len']).stdout.trim().split('\n').map((l) => l.split('\t'));
  // epoch seconds with nine decimals are more digits than a double holds: subtract in ns first
  const ns = (s: string) => { const [a, b = ''] = s.split('.'); return BigInt(a!) * 1_000_000_000n + BigInt(b.padEnd(9, '0').slice(0, 9)); };
  const t0 = ns(rows[0]![0]!);
  const t = rows.map((x) => Number(ns(x[0]!) - t0) / 1e9), size = rows.map((x) => Number(x[1]));
  for (const p of f.curve) {
    const want = bucketByDefinition(t, size, p.r_Bps);
    assert.ok(Math.abs(p.b_bytes - want) <= 1e-3 + 1e-6 * want, `r ${p.r_Bps}: qosd says ${p.b_bytes}, the definition ${want}`);
  }
  const atPeak = f.curve.at(-1)!;
  assert.ok(atPeak.b_bytes >= 8 * 1028 && atPeak.b_bytes <= 10 * 1028, `at the peak rate the burst still needs its size: ${atPeak.b_bytes}`);
  assert.ok(f.knee.b_bytes >= atPeak.b_bytes && f.knee.r_Bps <= atPeak.r_Bps);
});
