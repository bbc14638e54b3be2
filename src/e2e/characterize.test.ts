/* `qos characterize` on a capture tcpdump took of a real sender: python3 in the client
 * namespace sends UDP at a steady pace with one back-to-back burst; the curve qosd prints is
 * checked against the definition of b(r) computed here from tshark's reading of the same
 * file (frame times and IP lengths), and against what the sender did. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { bucketByDefinition } from '../characterize/lbap.js';
import { requireE2e, QOS, sh, Testbed, waitFor } from './harness.js';

requireE2e();
let tb: Testbed;

before(() => { tb = new Testbed(); });
after(() => { tb.cleanup(); });

test('a real capture: the curve is the definition computed from tshark\'s reading of the file, and shows the burst', async () => {
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

/** Runs qos without blocking (the sender must run beside it); resolves with its output.
 * onStderr is given its stderr so far each time more comes. */
function qosAsync(args: string[], onStderr?: (stderr: string) => void): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [QOS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d));
    p.stderr.on('data', (d: Buffer) => { stderr += d; onStderr?.(stderr); });
    p.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

interface LiveOut { flows: { key: string; packets: number; M: number; knee: { r_Bps: number } }[]; online: { key: string; r: number; b: number; advertise: boolean }[] }

test('--live --flow: captures for the duration, estimates on line every refresh, characterises what it caught', async () => {
  // once the capture has begun (qos says so), the sender sends 1028-byte IP packets every 10 ms for 2 s
  const py = `import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor i in range(200):\n  s.sendto(b'x' * 1000, ('${tb.serverIp}', 7402))\n  time.sleep(0.01)\n`;
  let capturing!: () => void;
  const begun = new Promise<void>((r) => (capturing = r));
  const run = qosAsync(['characterize', '--live', '--netns', tb.client, '--flow', 'proto=udp,dport=7402', '--duration', '4s', '--refresh', '1s', '--json'],
    (stderr) => { if (/^qos: capturing on any in \S+ for 4s$/m.test(stderr)) capturing(); });
  const early = await Promise.race([begun.then(() => null), run]);
  assert.equal(early, null, `qos characterize --live ended before it said it was capturing: ${JSON.stringify(early)}`);
  const sent = tb.inClient(['python3', '-c', py]);
  assert.equal(sent.status, 0, sent.stderr);
  const r = await run;
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as LiveOut;
  assert.equal(j.flows.length, 1);
  assert.equal(j.flows[0]!.packets, 200, 'every datagram sent after the capture began');
  assert.equal(j.flows[0]!.M, 1028);
  assert.ok(j.online.length >= 3, `an estimate every second: ${j.online.length}`);
  assert.equal(j.online.find((s) => s.b > 0)?.advertise, true, 'the first estimate is advertised');
  const last = j.online.at(-1)!;
  assert.ok(last.r > 50_000 && last.r < 200_000 && last.b >= 1028, JSON.stringify(last));
});

test('--live --app: what the sockets of a program send', async () => {
  // sends until killed: however slowly this machine runs the test, it is sending throughout
  const py = `import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.connect(('${tb.serverIp}', 7403))\nwhile True:\n  try: s.send(b'y' * 500)\n  except ConnectionRefusedError: pass  # the server's port unreachable, reported on a connected socket\n  time.sleep(0.01)\n`;
  const sender = spawn('ip', ['netns', 'exec', tb.client, 'python3', '-c', py], { stdio: 'ignore' });
  try {
    await waitFor("the sender's socket", () => sh(['ip', 'netns', 'exec', tb.client, 'ss', '-Hun', 'dst', `${tb.serverIp}:7403`]).stdout.trim() !== '');
    const r = await qosAsync(['characterize', '--live', '--netns', tb.client, '--app', 'python3', '--duration', '1500ms', '--refresh', '500ms', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as LiveOut;
    assert.deepEqual(j.flows.map((f) => f.key.replace(/:\d+ >/, ':* >')), [`udp ${tb.clientIp}:* > ${tb.serverIp}:7403`]);
    assert.ok(j.flows[0]!.packets > 50, `${j.flows[0]!.packets} packets`);
    const none = await qosAsync(['characterize', '--live', '--netns', tb.client, '--app', 'no-such-program', '--duration', '1s']);
    assert.equal(none.status, 66);
    assert.match(none.stderr, /no socket of a program named "no-such-program"/);
  } finally {
    sender.kill('SIGKILL');
  }
});
