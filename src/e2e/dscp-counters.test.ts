/* The kernel's packets per DSCP (kernel/dscp-counters.ts) in a network namespace: datagrams
 * sent with IP_TOS / IPV6_TCLASS are counted under their class, as many as tshark sees
 * arrive, with their IP lengths; a daemon there shows them in GET /v1/metrics/history with
 * its decisions, and removes its table when it stops. */

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { callJson } from '../daemon/admin-client.js';
import type { HistorySample } from '../daemon/metrics-history.js';
import { DscpCounters, dscpRunner } from '../kernel/dscp-counters.js';
import { requireE2e, sh, TestDaemon, Testbed, waitFor } from './harness.js';

requireE2e('nft', 'python3');
let tb: Testbed;

before(async () => {
  tb = new Testbed();
  await tb.udpSink([7301, 7302, 7303]);
});
after(() => tb.cleanup());

const PAYLOAD = 100;
/** python3 sending n datagrams of PAYLOAD bytes with a DS field (none set if null) to each
 * (address, port). */
const sender = (sends: [string, number, number | null, number][]) => `import socket
for addr, port, dscp, n in ${JSON.stringify(sends).replace(/null/g, 'None')}:
    v6 = ':' in addr
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    if dscp is None: pass
    elif v6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, dscp << 2)
    else: s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, dscp << 2)
    for i in range(n): s.sendto(b'x' * ${PAYLOAD}, (addr, port))
`;

const tables = (ns: string) => sh(['ip', 'netns', 'exec', ns, 'nft', 'list', 'tables']).stdout;

test('marked packets are counted under their class, as many as tshark sees, with their IP lengths', async () => {
  const counters = new DscpCounters('qosd_e2e_dscp', dscpRunner(tb.client));
  await counters.install();
  try {
    const cap = await tb.capture('udp and (dst port 7301 or dst port 7302 or dst port 7303)');
    const r = tb.inClient(['python3', '-c', sender([[tb.serverIp, 7301, 46, 7], [tb.serverIp6, 7302, 46, 3], [tb.serverIp, 7303, 34, 5]])]);
    assert.equal(r.status, 0, r.stderr);
    const pkts = await cap.packets();
    const seen = (dscp: number, v6?: boolean) => pkts.filter((p) => p.dscp === dscp && (v6 === undefined || p.ipv6 === v6)).length;
    assert.equal(seen(46), 10, 'tshark: seven EF over IPv4, three over IPv6');
    assert.equal(seen(34), 5);
    const got = await counters.read();
    assert.equal(got.get(46)?.packets, seen(46), 'EF, both families');
    assert.equal(got.get(34)?.packets, seen(34), 'AF41');
    // IPv4: 20 + 8 header bytes, IPv6: 40 + 8
    assert.equal(got.get(46)?.bytes, seen(46, false) * (28 + PAYLOAD) + seen(46, true) * (48 + PAYLOAD));
    assert.equal(got.get(34)?.bytes, seen(34) * (28 + PAYLOAD));
    assert.match(tables(tb.client), /qosd_e2e_dscp/);
  } finally {
    await counters.remove();
  }
  assert.doesNotMatch(tables(tb.client), /qosd_e2e_dscp/, 'removed');
});

test('a daemon shows its decisions and the packets per class in its metrics history, and removes its table at stop', async () => {
  const policy = 'rules:\n  - { name: py, match: { exe: "*python3*" }, action: { dscp: EF } }\n';
  const d = await new TestDaemon(tb.dir, policy, ['--kernel', 'on', '--metrics-interval', '500ms'], ['ip', 'netns', 'exec', tb.client]).start();
  try {
    const status = await callJson<{ dscp_counters: string | null }>(d.admin, 'GET', '/v1/status');
    assert.equal(status.dscp_counters, `inet ${d.nftTable}_dscp`);
    // the agent marks python3's socket EF; nothing in the program sets a DS field
    const r = tb.inClient(d.run('python3', '-c', sender([[tb.serverIp, 7301, null, 40]])));
    assert.equal(r.status, 0, r.stderr);
    let samples: HistorySample[] = [];
    await waitFor('a sample with decisions and EF packets', async () => {
      samples = (await callJson<{ samples: HistorySample[] }>(d.admin, 'GET', '/v1/metrics/history')).samples;
      return samples.some((s) => s.decisions_per_s > 0) && samples.some((s) => (s.dscp?.ef?.packets_per_s ?? 0) > 0);
    }, 200).catch((e: Error) => { throw new Error(`${e.message}; the samples: ${JSON.stringify(samples)}`); });
    const hist = await callJson<{ interval_s: number }>(d.admin, 'GET', '/v1/metrics/history');
    assert.equal(hist.interval_s, 0.5);
    const withEf = samples.filter((s) => s.dscp?.ef);
    // the EF packets are python3's datagrams alone: bytes over packets is their IP length
    for (const s of withEf.filter((x) => x.dscp!.ef!.packets_per_s > 0)) {
      const size = s.dscp!.ef!.bytes_per_s / s.dscp!.ef!.packets_per_s;
      assert.ok(Math.abs(size - (28 + PAYLOAD)) < 1, `EF bytes per packet ${size}`);
    }
    assert.ok(samples.some((s) => s.latency_p50_us !== null), 'the requests were timed');
  } finally {
    await d.stop();
  }
  assert.doesNotMatch(tables(tb.client), new RegExp(`${d.nftTable}_dscp`), 'the daemon removed its table');
});
