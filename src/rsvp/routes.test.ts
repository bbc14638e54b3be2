/* The routing table as the engine sees it, from canned `ip -j` documents: longest prefix, then
 * lowest metric; the source a route names or else its interface's first address; no route for
 * unreachable ones; interfaces with their ifindex as the logical interface handle. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseInterfaces, parseRoutes, RouteTable, systemRoutes } from './routes.js';

const ROUTES4 = JSON.stringify([
  { dst: 'default', gateway: '10.1.0.1', dev: 'eth0', flags: [] },
  { dst: '10.1.0.0/24', dev: 'eth0', protocol: 'kernel', scope: 'link', prefsrc: '10.1.0.2', flags: [] },
  { dst: '10.2.0.0/16', gateway: '10.1.0.254', dev: 'eth0', metric: 20, flags: [] },
  { dst: '10.2.0.0/16', gateway: '10.3.0.1', dev: 'eth1', metric: 10, flags: [] },
  { dst: '10.2.7.0/24', dev: 'eth1', flags: [] },
  { dst: '10.2.7.9', type: 'unreachable', flags: [] },
  { dst: '10.9.0.0/16', nexthops: [{ gateway: '10.3.0.2', dev: 'eth1', weight: 1, flags: [] }, { gateway: '10.1.0.3', dev: 'eth0', weight: 1, flags: [] }], flags: [] },
]);
const ROUTES6 = JSON.stringify([
  { dst: 'fd00:1::/64', dev: 'eth0', protocol: 'kernel', metric: 256, flags: [], pref: 'medium' },
  { dst: 'fe80::/64', dev: 'eth0', protocol: 'kernel', metric: 256, flags: [], pref: 'medium' },
  { dst: 'default', gateway: 'fd00:1::1', dev: 'eth0', metric: 1024, flags: [], pref: 'medium' },
]);
const LINKS = JSON.stringify([
  { ifindex: 1, ifname: 'lo', flags: ['LOOPBACK', 'UP'], addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8, scope: 'host' }] },
  { ifindex: 4, ifname: 'eth0', flags: ['BROADCAST', 'UP'], mtu: 1500, addr_info: [
    { family: 'inet', local: '10.1.0.2', prefixlen: 24, scope: 'global' },
    { family: 'inet6', local: 'fe80::2', prefixlen: 64, scope: 'link' },
    { family: 'inet6', local: 'fd00:1::2', prefixlen: 64, scope: 'global' },
  ] },
  { ifindex: 7, ifname: 'eth1', flags: ['BROADCAST', 'UP'], mtu: 9000, addr_info: [{ family: 'inet', local: '10.3.0.9', prefixlen: 24, scope: 'global' }] },
  { ifindex: 9, ifname: 'dummy0', flags: ['BROADCAST'] },
]);
const table = new RouteTable([...parseRoutes(ROUTES4, 4), ...parseRoutes(ROUTES6, 6)], parseInterfaces(LINKS));

test('interfaces: all but loopback, the ifindex as the logical interface handle, global addresses first, the MTU when ip gives it', () => {
  assert.deepEqual(table.interfaces, [
    { name: 'eth0', lih: 4, addresses: ['10.1.0.2', 'fd00:1::2', 'fe80::2'], mtu: 1500 },
    { name: 'eth1', lih: 7, addresses: ['10.3.0.9'], mtu: 9000 },
    { name: 'dummy0', lih: 9, addresses: [] },
  ]);
});

test('the longest prefix wins, then the lowest metric; the source is the route\'s, or its interface\'s first', () => {
  assert.deepEqual(table.lookup('10.1.0.77'), { ifname: 'eth0', gateway: null, src: '10.1.0.2' });
  assert.deepEqual(table.lookup('10.2.3.4'), { ifname: 'eth1', gateway: '10.3.0.1', src: '10.3.0.9' });
  assert.deepEqual(table.lookup('10.2.7.1'), { ifname: 'eth1', gateway: null, src: '10.3.0.9' });
  assert.deepEqual(table.lookup('192.0.2.1'), { ifname: 'eth0', gateway: '10.1.0.1', src: '10.1.0.2' });
  assert.deepEqual(table.lookup('10.9.1.1'), { ifname: 'eth1', gateway: '10.3.0.2', src: '10.3.0.9' }, 'multipath: the first next hop');
  assert.deepEqual(table.lookup('fd00:1::99'), { ifname: 'eth0', gateway: null, src: 'fd00:1::2' });
  assert.deepEqual(table.lookup('2001:db8::1'), { ifname: 'eth0', gateway: 'fd00:1::1', src: 'fd00:1::2' });
});

test('no route: an unreachable route, a family without routes, an interface without an address of the family', () => {
  assert.equal(table.lookup('10.2.7.9'), null);
  const v4only = new RouteTable(parseRoutes(ROUTES4, 4), parseInterfaces(LINKS));
  assert.equal(v4only.lookup('fd00:1::1'), null);
  const bare = new RouteTable(parseRoutes(JSON.stringify([{ dst: '10.8.0.0/16', dev: 'dummy0', flags: [] }]), 4), parseInterfaces(LINKS));
  assert.equal(bare.lookup('10.8.0.1'), null);
});

test('the system\'s table is read and refreshed (this machine\'s own namespace)', async () => {
  const s = await systemRoutes();
  assert.ok(s.interfaces.every((i) => i.name !== 'lo' && i.lih > 0));
  await s.refresh();
  assert.ok(Array.isArray(s.interfaces));
});
