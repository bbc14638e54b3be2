import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyEvent, diffLinks, eventsOf, lastOfEach, netlinkSubscribed, parseMonitorLine, parseSnapshot, type Link, type LinkEvent, type MonitorLine } from './link-events.js';

/* Recorded from `ip -o monitor link` (iproute2 6.1, kernel 6.18) in a namespace while these ran:
 * ip link add lw0 type veth peer name lw1; ip link set lw0 up; ip link set lw1 up;
 * ip link set lw0 down; ip link set lw0 name lw9; ip link del lw9 */
const VETH = `2: lw1@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether de:93:7f:60:13:e1 brd ff:ff:ff:ff:ff:ff
3: lw0@lw1: <BROADCAST,MULTICAST,M-DOWN> mtu 1500 qdisc noop state DOWN group default \\    link/ether de:d7:3c:1b:a8:7e brd ff:ff:ff:ff:ff:ff
3: lw0@lw1: <NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN> mtu 1500 qdisc noqueue state LOWERLAYERDOWN group default \\    link/ether de:d7:3c:1b:a8:7e brd ff:ff:ff:ff:ff:ff
2: lw1@lw0: <NO-CARRIER,BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state LOWERLAYERDOWN group default \\    link/ether de:93:7f:60:13:e1 brd ff:ff:ff:ff:ff:ff
2: lw1@lw0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default \\    link/ether de:93:7f:60:13:e1 brd ff:ff:ff:ff:ff:ff
3: lw0@lw1: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default \\    link/ether de:d7:3c:1b:a8:7e brd ff:ff:ff:ff:ff:ff
3: lw0@lw1: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN group default \\    link/ether de:d7:3c:1b:a8:7e brd ff:ff:ff:ff:ff:ff
2: lw1@lw0: <NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN> mtu 1500 qdisc noqueue state LOWERLAYERDOWN group default \\    link/ether de:93:7f:60:13:e1 brd ff:ff:ff:ff:ff:ff
3: lw9@lw1: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN group default \\    link/ether de:d7:3c:1b:a8:7e brd ff:ff:ff:ff:ff:ff
2: lw1@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN group default \\    link/ether de:93:7f:60:13:e1 brd ff:ff:ff:ff:ff:ff
Deleted 3: lw9@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether de:d7:3c:1b:a8:7e brd ff:ff:ff:ff:ff:ff
Deleted 2: lw1@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether de:93:7f:60:13:e1 brd ff:ff:ff:ff:ff:ff`;

/* Recorded the same way: ip link add br0 type bridge; ip link add lw0 type veth peer name lw1;
 * ip link set lw0 master br0; ip link set lw0 up; ip link set lw0 nomaster. The lines without
 * `group` are the bridge's own (AF_BRIDGE) messages about its port: "Deleted 4" among them is
 * the port leaving the bridge, not the link going. */
const BRIDGE = `2: br0: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether ce:6a:30:0d:1b:1a brd ff:ff:ff:ff:ff:ff
3: lw1@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether ca:40:40:9d:a1:c6 brd ff:ff:ff:ff:ff:ff
4: lw0@lw1: <BROADCAST,MULTICAST,M-DOWN> mtu 1500 qdisc noop state DOWN group default \\    link/ether 36:ef:61:76:8b:ac brd ff:ff:ff:ff:ff:ff
4: lw0@lw1: <BROADCAST,MULTICAST,M-DOWN> mtu 1500 qdisc noop master br0 state DOWN group default \\    link/ether 36:ef:61:76:8b:ac brd ff:ff:ff:ff:ff:ff
2: br0: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default event FEATURE CHANGE \\    link/ether ce:6a:30:0d:1b:1a brd ff:ff:ff:ff:ff:ff
4: lw0@lw1: <BROADCAST,MULTICAST,M-DOWN> mtu 1500 master br0 state DOWN \\    link/ether 36:ef:61:76:8b:ac
4: lw0@lw1: <NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN> mtu 1500 qdisc noqueue master br0 state LOWERLAYERDOWN group default \\    link/ether 36:ef:61:76:8b:ac brd ff:ff:ff:ff:ff:ff
4: lw0@lw1: <NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN> mtu 1500 master br0 state LOWERLAYERDOWN \\    link/ether 36:ef:61:76:8b:ac
Deleted 4: lw0@lw1: <NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN> mtu 1500 master br0 state LOWERLAYERDOWN \\    link/ether 36:ef:61:76:8b:ac
4: lw0@lw1: <NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN> mtu 1500 qdisc noqueue state LOWERLAYERDOWN group default \\    link/ether 36:ef:61:76:8b:ac brd ff:ff:ff:ff:ff:ff`;

/** The events a stream of monitor lines makes, as a watcher applies them. */
function replay(text: string, links = new Map<number, Link>()): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const p = parseMonitorLine(line, (i) => links.get(i)?.name);
    if (!p) continue;
    for (const e of eventsOf(links, p)) { applyEvent(links, e); out.push(show(e)); }
  }
  return out;
}
const show = (e: LinkEvent) => `${e.kind} ${e.link.index} ${e.kind === 'renamed' ? `${e.from}->` : ''}${e.link.name}`;

test('monitor lines: a veth pair added, brought up, down, renamed and deleted gives one event for each change', () => {
  assert.deepEqual(replay(VETH), [
    // deleting one end of a veth closes the other first
    'added 2 lw1', 'added 3 lw0', 'up 3 lw0', 'up 2 lw1', 'down 3 lw0', 'renamed 3 lw0->lw9', 'down 2 lw1', 'removed 3 lw9', 'removed 2 lw1',
  ]);
});

test('monitor lines: a bridge port\'s own messages (no group: AF_BRIDGE) are not the link: leaving the bridge does not remove it', () => {
  assert.deepEqual(replay(BRIDGE), ['added 2 br0', 'added 3 lw1', 'added 4 lw0', 'up 4 lw0']);
  assert.equal(parseMonitorLine('Deleted 4: lw0@lw1: <NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN> mtu 1500 master br0 state LOWERLAYERDOWN \\    link/ether 36:ef:61:76:8b:ac'), null);
});

test('monitor lines: the name without its peer, a name holding "@" kept when known, and what is not a link line', () => {
  const l = parseMonitorLine('7: eth0.10@eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default \\    link/ether 00:11:22:33:44:55 brd ff:ff:ff:ff:ff:ff');
  assert.deepEqual(l, { deleted: false, index: 7, link: { index: 7, name: 'eth0.10', up: true } });
  const odd = '9: a@b: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether 00:11:22:33:44:55 brd ff:ff:ff:ff:ff:ff';
  assert.equal(parseMonitorLine(odd)!.link.name, 'a');
  assert.equal(parseMonitorLine(odd, () => 'a@b')!.link.name, 'a@b');
  assert.equal(parseMonitorLine('5: wg0@if5: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420 qdisc noqueue state UNKNOWN group default \\    link/none ')!.link.name, 'wg0');
  for (const junk of ['', 'Timestamp: Sat Jan 1', '[LINK]', '3: lw0', 'x: lw0: <UP> mtu 1500 group default']) assert.equal(parseMonitorLine(junk), null, junk);
});

test('snapshot: ip -j link show as links', () => {
  const json = JSON.stringify([
    { ifindex: 1, ifname: 'lo', flags: ['LOOPBACK', 'UP', 'LOWER_UP'], mtu: 65536, operstate: 'UNKNOWN' },
    { ifindex: 3, link: 'lw1', ifname: 'lw0', flags: ['BROADCAST', 'MULTICAST', 'M-DOWN'], operstate: 'DOWN' },
  ]);
  assert.deepEqual(parseSnapshot(json), [{ index: 1, name: 'lo', up: true }, { index: 3, name: 'lw0', up: false }]);
  assert.deepEqual(parseSnapshot(''), []);
  assert.throws(() => parseSnapshot('{}'), /not a JSON array/);
});

const table = (...ls: Link[]) => new Map(ls.map((l) => [l.index, l]));
const L = (index: number, name: string, up = true): Link => ({ index, name, up });

test('diff: what changed while the monitor was away, removals first, then renames, additions, up and down', () => {
  const known = table(L(1, 'lo'), L(2, 'eth0'), L(3, 'eth1'), L(4, 'wan0', false));
  // eth0 deleted and made again (a new index), eth1 renamed, wan0 brought up, a new link
  const now = [L(1, 'lo'), L(3, 'lan1'), L(4, 'wan0'), L(5, 'eth0'), L(6, 'veth9', false)];
  assert.deepEqual(diffLinks(known, now).map(show), ['removed 2 eth0', 'renamed 3 eth1->lan1', 'added 5 eth0', 'added 6 veth9', 'up 4 wan0']);
  assert.deepEqual(diffLinks(known, [...known.values()]), [], 'nothing changed, nothing said');
  assert.deepEqual(diffLinks(new Map(), [L(1, 'lo')]).map(show), ['added 1 lo'], 'the first snapshot adds everything');
});

test('diff: renames ordered so that none takes a name still held; a swap is a removal and an addition', () => {
  // eth1 -> eth2 must come before eth0 -> eth1
  const chain = diffLinks(table(L(2, 'eth0'), L(3, 'eth1')), [L(2, 'eth1'), L(3, 'eth2')]);
  assert.deepEqual(chain.map(show), ['renamed 3 eth1->eth2', 'renamed 2 eth0->eth1']);
  const swap = diffLinks(table(L(2, 'eth0'), L(3, 'eth1')), [L(2, 'eth1'), L(3, 'eth0')]);
  assert.deepEqual(swap.map(show), ['removed 2 eth0', 'renamed 3 eth1->eth0', 'added 2 eth1']);
  // applied in order, every step leaves names unique, and the end is the snapshot
  const links = table(L(2, 'eth0'), L(3, 'eth1'));
  for (const e of swap) {
    applyEvent(links, e);
    const names = [...links.values()].map((l) => l.name);
    assert.equal(new Set(names).size, names.length);
  }
  assert.deepEqual([...links.values()].sort((a, b) => a.index - b.index), [L(2, 'eth1'), L(3, 'eth0')]);
});

test('lines read while the snapshot was taken: only the last of each link counts', () => {
  const m = (index: number, name: string, deleted = false, up = true): MonitorLine => ({ deleted, index, link: { index, name, up } });
  const lines = [m(3, 'lw0', false, false), m(4, 'x'), m(3, 'lw0'), m(4, 'x', true)];
  assert.deepEqual(lastOfEach(lines), [m(3, 'lw0'), m(4, 'x', true)]);
  // the snapshot already showed lw0 up and x gone: the last lines change nothing
  const known = table(L(3, 'lw0'));
  assert.deepEqual(lastOfEach(lines).flatMap((p) => eventsOf(known, p)), []);
});

test('a netlink socket subscribed to route groups, from /proc/PID/net/netlink', () => {
  const t = `sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
00000000187faa00 0   15655      00000001 0        0        0     2        0        26427927
00000000187fab00 0   15656      00000000 0        0        0     2        0        26427928
00000000187fac00 9   15657      00000001 0        0        0     2        0        26427929`;
  assert.equal(netlinkSubscribed(t, 15655), true);
  assert.equal(netlinkSubscribed(t, 15656), false, 'bound, no group yet');
  assert.equal(netlinkSubscribed(t, 15657), false, 'audit, not route');
  assert.equal(netlinkSubscribed(t, 1), false);
  assert.equal(netlinkSubscribed('', 1), false);
});
