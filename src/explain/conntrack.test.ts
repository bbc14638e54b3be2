/* A socket's connection mark found in nf_conntrack's lines (pure): the original direction's
 * tuple, IPv4 and IPv6 (printed in full by the kernel), not the reply's, not another protocol's. */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { conntrackIndex, markOf } from './conntrack.js';

const TEXT = [
  'ipv4     2 tcp      6 431999 ESTABLISHED src=10.200.1.1 dst=10.200.1.2 sport=40000 dport=8083 src=10.200.1.2 dst=10.200.1.1 sport=8083 dport=40000 [ASSURED] mark=16777472 zone=0 use=2',
  'ipv4     2 udp      17 29 src=10.200.1.1 dst=10.200.1.2 sport=40000 dport=8083 [UNREPLIED] src=10.200.1.2 dst=10.200.1.1 sport=8083 dport=40000 mark=7 zone=0 use=2',
  'ipv6     10 tcp      6 431999 ESTABLISHED src=fd00:00c8:0001:0000:0000:0000:0000:0001 dst=fd00:00c8:0001:0000:0000:0000:0000:0002 sport=5555 dport=80 src=fd00:00c8:0001:0000:0000:0000:0000:0002 dst=fd00:00c8:0001:0000:0000:0000:0000:0001 sport=80 dport=5555 [ASSURED] mark=33554688 zone=0 use=2',
].join('\n');

test('the mark of a socket\'s flow: its original direction, by protocol; IPv6 as the kernel prints it; none for a reply or an unknown flow', () => {
  const ix = conntrackIndex(TEXT);
  const t = { family: 4 as const, proto: 'tcp' as const, src: '10.200.1.1', sport: 40000, dst: '10.200.1.2', dport: 8083 };
  assert.equal(markOf(ix, t), 16777472);
  assert.equal(markOf(ix, { ...t, proto: 'udp' }), 7);
  assert.equal(markOf(ix, { family: 6, proto: 'tcp', src: 'fd00:c8:1::1', sport: 5555, dst: 'fd00:c8:1::2', dport: 80 }), 33554688);
  assert.equal(markOf(ix, { ...t, src: '10.200.1.2', sport: 8083, dst: '10.200.1.1', dport: 40000 }), null, 'the reply direction is not the socket\'s');
  assert.equal(markOf(ix, { ...t, dport: 8084 }), null);
});
