/* Which traffic-control flow a socket falls in, looked up in what the daemon's traffic control
 * lists (a TrafficControl over a runner that applies nothing): the exact filter before a
 * wildcard one that also matches, a wildcard one alone, another interface's filters not, none. */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TrafficControl, type TcRunner } from '../tc/control.js';
import { tcLookup, tcPlace, type TcListing } from './tc-place.js';

const runner: TcRunner = {
  async apply() { /* nothing is installed */ },
  async link(dev: string) { return { exists: dev === 'eth0' || dev === 'eth1', vlan: false, speed: 125_000_000, root: null }; },
  async leftovers() { return { devs: [], table: false, tagged: [] }; },
};

test('a socket\'s packets: the exact filter wins over a wildcard one; a wildcard one alone; another interface\'s not; none says why', async () => {
  const tc = new TrafficControl(runner);
  const video = await tc.addFlow({ dev: 'eth0', template: 'H263CIF', service: 'controlled-load', name: 'video' }) as { id: number };
  const bulk = await tc.addFlow({ dev: 'eth0', flowspec: { TokenRate: '2Mbit', TokenBucketSize: '16kB' }, mode: 'discard' }, false, { kind: 'policy', pid: 42, fd: 5, rule: 'backup' }) as { id: number };
  const other = await tc.addFlow({ dev: 'eth1', flowspec: { TokenRate: '1Mbit' } }) as { id: number };
  const wide = await tc.addFilter({ flow: video.id, dst: '192.0.2.0/24', proto: 'tcp' }) as { id: number };
  const exact = await tc.addFilter({ flow: bulk.id, src: '10.0.0.1', dst: '192.0.2.10', proto: 'tcp', sport: 40000, dport: 873 }) as { id: number };
  await tc.addFilter({ flow: other.id, dst: '198.51.100.0/24' });
  const lookup = tcLookup(tc.list() as unknown as TcListing);
  const t = { family: 4 as const, proto: 'tcp' as const, src: '10.0.0.1', sport: 40000, dst: '192.0.2.10', dport: 873 };

  const p = tcPlace(lookup, t, 'eth0');
  assert.ok(p.in === 'flow');
  assert.deepEqual(p.filter, { id: exact.id, exact: true, match: 'tcp 10.0.0.1:40000 -> 192.0.2.10:873' });
  assert.equal(p.dev, 'eth0');
  assert.deepEqual([p.flow.id, p.flow.class, p.flow.mode, p.flow.owner], [bulk.id, `d5c:${(0x10 + bulk.id).toString(16)}`, 'discard', { kind: 'policy', pid: 42, fd: 5, rule: 'backup' }]);
  assert.deepEqual([p.flow.conforming, p.flow.nonconforming], [{ dscp: 0, pcp: 0 }, { dscp: 8, pcp: 1 }]);

  const w = tcPlace(lookup, { ...t, sport: 40001 }, 'eth0');
  assert.ok(w.in === 'flow');
  assert.deepEqual([w.flow.id, w.flow.name, w.flow.service, w.flow.conforming, w.filter.id, w.filter.exact], [video.id, 'video', 'ControlledLoad', { dscp: 24, pcp: 3 }, wide.id, false]);

  assert.deepEqual(tcPlace(lookup, { ...t, proto: 'udp' }, 'eth0'), { in: 'none', why: 'none of the 2 traffic-control filters on eth0 matches udp 10.0.0.1:40000 -> 192.0.2.10:873' });
  assert.deepEqual(tcPlace(lookup, { ...t, dst: '198.51.100.7' }, 'eth0').in, 'none', 'eth1\'s filter is not for packets leaving by eth0');
  assert.equal(tcPlace(lookup, { ...t, dst: '198.51.100.7' }, 'eth1').in, 'flow');
  assert.deepEqual(tcPlace(lookup, t, 'lo'), { in: 'none', why: 'no traffic-control filter on lo, which its packets leave by' });
  const v6 = tcPlace(lookup, { family: 6, proto: 'tcp', src: '2001:db8::1', sport: 1, dst: '2001:db8::2', dport: 2 }, 'eth0');
  assert.deepEqual(v6, { in: 'none', why: 'none of the 2 traffic-control filters on eth0 matches tcp [2001:db8::1]:1 -> [2001:db8::2]:2' });
});
