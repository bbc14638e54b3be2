import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LinkEvent } from '../net/link-events.js';
import { TrafficControl, type TcRunner } from './control.js';
import { TcLinks } from './links.js';
import type { TcPlan } from './plan.js';

/** Devices by name (index, root qdisc) that the plans applied change as the kernel would:
 * our root qdisc comes and goes with `qdisc add/del ... root`, and with the device. */
class FakeKernel implements TcRunner {
  devs = new Map<string, { index: number; root: string | null }>();
  plans: TcPlan[] = [];
  async apply(p: TcPlan): Promise<void> {
    for (const l of p.tc) {
      const m = /^qdisc (add|del) dev (\S+) root/.exec(l);
      if (!m) continue;
      const d = this.devs.get(m[2]!);
      if (!d) throw new Error(`tc: cannot find device "${m[2]}"`);
      if (m[1] === 'add' && d.root) throw new Error('tc: exclusivity flag on, cannot modify');
      d.root = m[1] === 'add' ? 'htb d5c:' : null;
    }
    this.plans.push(p);
  }
  async link(dev: string) {
    const d = this.devs.get(dev);
    return d ? { exists: true, vlan: false, speed: null, root: d.root, index: d.index } : { exists: false, vlan: false, speed: null, root: null };
  }
  async leftovers() { return { devs: [], table: false, tagged: [] }; }
  last(): TcPlan { return this.plans.at(-1)!; }
}

/** A link watcher's table and events, driven by the test. */
class FakeLinks {
  private fns = new Set<(e: LinkEvent) => void>();
  table = new Map<string, number>();
  subscribe(fn: (e: LinkEvent) => void) { this.fns.add(fn); return () => { this.fns.delete(fn); }; }
  byName(name: string) { const index = this.table.get(name); return index === undefined ? undefined : { index }; }
  emit(e: LinkEvent): void {
    if (e.kind === 'removed') this.table.delete(e.link.name);
    else { if (e.kind === 'renamed') this.table.delete(e.from); this.table.set(e.link.name, e.link.index); }
    for (const f of this.fns) f(e);
  }
}

type Listing = { interfaces: Array<{ dev: string; present: boolean; absent: { why: string } | null; ifindex: number | null; flows: number }>; flows: Array<{ id: number; dev: string; waiting: boolean }>; filters: Array<{ id: number; flow: number }> };

/** A daemon's traffic control on eth0 (index 5): two flows, an IPv4 and an IPv6 filter. */
async function setup() {
  const k = new FakeKernel();
  k.devs.set('eth0', { index: 5, root: null });
  k.devs.set('eth1', { index: 6, root: null });
  const links = new FakeLinks();
  links.table.set('eth0', 5).set('eth1', 6);
  const tc = new TrafficControl(k, undefined, { links });
  const follow = new TcLinks(tc, links);
  follow.start();
  await tc.setInterface('eth0', { rate: '10Mbit' });
  const a = await tc.addFlow({ dev: 'eth0', flowspec: { TokenRate: '1Mbit', TokenBucketSize: '10kB' }, service: 'guaranteed' }) as { id: number };
  const b = await tc.addFlow({ dev: 'eth0', flowspec: { TokenRate: '1Mbit' } }) as { id: number };
  await tc.addFilter({ flow: a.id, dst: '10.0.0.2', proto: 'udp', dport: 5000 });
  await tc.addFilter({ flow: b.id, dst: 'fd00::2', proto: 'udp', dport: 5001 });
  await tc.setInterface('eth1', { rate: '10Mbit' });
  const flow = await tc.addFlow({ dev: 'eth1', flowspec: { TokenRate: '1Mbit' } }) as { id: number };
  await tc.addFilter({ flow: flow.id, dst: '10.0.1.2', proto: 'udp', dport: 5002 });
  return { k, links, tc, follow, list: () => tc.list() as Listing };
}

/** The link gone from the kernel and the watcher. */
function remove(k: FakeKernel, links: FakeLinks, name: string): void {
  const index = k.devs.get(name)!.index;
  k.devs.delete(name);
  links.emit({ kind: 'removed', link: { index, name, up: true } });
}
function add(k: FakeKernel, links: FakeLinks, name: string, index: number, root: string | null = null): void {
  k.devs.set(name, { index, root });
  links.emit({ kind: 'added', link: { index, name, up: false } });
}

test('an interface gone keeps its configuration, flows and filters, waiting; only its nftables part leaves the kernel', async () => {
  const { k, links, tc, follow, list } = await setup();
  const before = list();
  const plans = k.plans.length;
  remove(k, links, 'eth0');
  await follow.settled();
  assert.equal(k.plans.length, plans + 1);
  assert.deepEqual(k.last().tc, [], 'nothing asked of the device that went');
  assert.ok(k.last().nft.includes('delete chain inet qosd_tc demote_0') && k.last().nft.some((l) => l.startsWith('add rule inet qosd_tc post oifname "eth1"')));
  const l = list();
  const eth0 = l.interfaces.find((i) => i.dev === 'eth0')!;
  assert.equal(eth0.present, false);
  assert.equal(eth0.absent!.why, 'gone');
  assert.equal(eth0.flows, 2);
  assert.deepEqual(l.flows.map((f) => [f.dev, f.waiting]), [['eth0', true], ['eth0', true], ['eth1', false]]);
  assert.deepEqual(l.filters, before.filters, 'every filter kept');
  assert.deepEqual(tc.status().absent, [{ dev: 'eth0', since: (tc.status().absent as Array<{ since: string }>)[0]!.since, why: 'gone' }]);
  assert.equal(tc.status().flows_waiting, 2);
  assert.deepEqual(follow.counts, { gone: 1, restored: 0, renamed: 0, refused: 0 });
  // a flow added meanwhile waits with the others; nothing reaches the kernel
  await tc.addFlow({ dev: 'eth0', flowspec: { TokenRate: '1Mbit' } });
  assert.deepEqual(k.last(), { tc: [], nft: [], ip: [], dot1p: [] });
});

test('an interface of that name back (a new index): all of its traffic control is installed again at once', async () => {
  const { k, links, follow, list } = await setup();
  remove(k, links, 'eth0');
  await follow.settled();
  add(k, links, 'eth0', 9);
  await follow.settled();
  const p = k.last();
  assert.equal(p.tc[0], 'qdisc add dev eth0 root handle d5c: htb default 2');
  assert.equal(p.tc.filter((l) => /^class add dev eth0 parent d5c:1 classid d5c:1[12] /.test(l)).length, 2);
  assert.equal(p.nft.filter((l) => l.startsWith('add chain inet qosd_tc flow_')).length, 2);
  assert.ok(p.nft.some((l) => /^add element inet qosd_tc w4_\d+ \{ 0\.0\.0\.0-255\.255\.255\.255 \. 10\.0\.0\.2 \. 17 \. 0-65535 \. 5000 : goto flow_1 \}$/.test(l)), p.nft.join('\n'));
  assert.ok(p.nft.some((l) => /^add element inet qosd_tc w6_\d+ \{ .* \. fd00:0:0:0:0:0:0:2 \. 17 \. 0-65535 \. 5001 : goto flow_2 \}$/.test(l)), p.nft.join('\n'));
  assert.ok(!p.tc.some((l) => l.includes('eth1')), 'the other interface untouched');
  const eth0 = list().interfaces.find((i) => i.dev === 'eth0')!;
  assert.deepEqual([eth0.present, eth0.ifindex], [true, 9]);
  assert.ok(list().flows.every((f) => !f.waiting));
  assert.deepEqual(follow.counts, { gone: 1, restored: 1, renamed: 0, refused: 0 });
  assert.equal(follow.last!.what, 'restored');
});

test('back with a root qdisc not ours: refused, it goes on waiting saying why; set-interface tries again once it is removed', async () => {
  const { k, links, tc, follow, list } = await setup();
  remove(k, links, 'eth0');
  await follow.settled();
  const plans = k.plans.length;
  add(k, links, 'eth0', 9, 'htb 1:');
  await follow.settled();
  assert.ok(k.plans.slice(plans).every((p) => p.tc.length === 0), 'the other qdisc left alone');
  const eth0 = list().interfaces.find((i) => i.dev === 'eth0')!;
  assert.equal(eth0.present, false);
  assert.match(eth0.absent!.why, /root qdisc, htb 1:, that is not this daemon's/);
  assert.equal(follow.counts.refused, 1);
  assert.match(String(follow.last!.why), /htb 1:/);
  // still there: set-interface says so, as for a new interface
  await assert.rejects(tc.setInterface('eth0', {}), /already has a root qdisc, htb 1:/);
  k.devs.get('eth0')!.root = null;
  await tc.setInterface('eth0', {});
  assert.equal(list().interfaces.find((i) => i.dev === 'eth0')!.present, true);
  assert.equal(k.last().tc[0], 'qdisc add dev eth0 root handle d5c: htb default 2');
});

test('a configuration waiting may be changed while its interface is away', async () => {
  const { k, links, tc, follow, list } = await setup();
  remove(k, links, 'eth0');
  await follow.settled();
  await tc.setInterface('eth0', { rate: '20Mbit' });
  assert.equal(list().interfaces.find((i) => i.dev === 'eth0')!.present, false);
  add(k, links, 'eth0', 9);
  await follow.settled();
  assert.ok(k.last().tc.includes('class add dev eth0 parent d5c: classid d5c:1 htb rate 20000000bit ceil 20000000bit quantum 1514'));
});

test('a rename moves the configuration to the new name; the kernel keeps the rest, only the lookups are written again', async () => {
  const { k, links, tc, follow, list } = await setup();
  k.devs.set('wan0', k.devs.get('eth0')!);
  k.devs.delete('eth0');
  links.emit({ kind: 'renamed', link: { index: 5, name: 'wan0', up: true }, from: 'eth0' });
  await follow.settled();
  assert.deepEqual(k.last().tc, []);
  assert.ok(k.last().nft.includes('flush chain inet qosd_tc post'));
  assert.ok(k.last().nft.some((l) => l.startsWith('add rule inet qosd_tc post oifname "wan0"')));
  assert.ok(!k.last().nft.some((l) => l.includes('"eth0"')));
  assert.deepEqual(list().interfaces.map((i) => i.dev).sort(), ['eth1', 'wan0']);
  assert.deepEqual(list().flows.map((f) => f.dev), ['wan0', 'wan0', 'eth1']);
  assert.equal(follow.counts.renamed, 1);
  // requests now name it by its new name
  await tc.addFlow({ dev: 'wan0', flowspec: { TokenRate: '1Mbit' } });
  assert.ok(k.last().tc.some((l) => l.startsWith('class add dev wan0 ')));
  // and it is followed under it: gone and back
  remove(k, links, 'wan0');
  await follow.settled();
  add(k, links, 'wan0', 12);
  await follow.settled();
  assert.equal(k.last().tc[0], 'qdisc add dev wan0 root handle d5c: htb default 2');
});

test('renamed onto a name whose configuration waits: that name\'s is dropped; a link renamed to a waiting name brings it back', async () => {
  const { k, links, follow, list } = await setup();
  remove(k, links, 'eth1');
  await follow.settled();
  // eth0 takes the name eth1: it keeps its own configuration, the waiting one goes
  k.devs.set('eth1', k.devs.get('eth0')!);
  k.devs.delete('eth0');
  links.emit({ kind: 'renamed', link: { index: 5, name: 'eth1', up: true }, from: 'eth0' });
  await follow.settled();
  assert.deepEqual(list().interfaces.map((i) => [i.dev, i.present, i.flows]), [['eth1', true, 2]]);
  assert.equal(list().filters.length, 2);
  // a new device made as tmp0 and renamed eth0 (as udev does) is eth0 back for a configuration waiting for it
  remove(k, links, 'eth1');
  await follow.settled();
  add(k, links, 'tmp0', 20);
  await follow.settled();
  k.devs.set('eth1', k.devs.get('tmp0')!);
  k.devs.delete('tmp0');
  links.emit({ kind: 'renamed', link: { index: 20, name: 'eth1', up: false }, from: 'tmp0' });
  await follow.settled();
  assert.deepEqual(list().interfaces.map((i) => [i.dev, i.present, i.ifindex]), [['eth1', true, 20]]);
  assert.equal(follow.counts.restored, 1);
});

test('up: the kernel kept the qdisc through down and up, nothing to do; if it was removed meanwhile, all is installed again', async () => {
  const { k, links, follow } = await setup();
  const plans = k.plans.length;
  links.emit({ kind: 'down', link: { index: 5, name: 'eth0', up: false } });
  links.emit({ kind: 'up', link: { index: 5, name: 'eth0', up: true } });
  await follow.settled();
  assert.equal(k.plans.length, plans, 'kept: nothing applied');
  k.devs.get('eth0')!.root = null; // tc qdisc del dev eth0 root, by hand
  links.emit({ kind: 'up', link: { index: 5, name: 'eth0', up: true } });
  await follow.settled();
  assert.equal(k.last().tc[0], 'qdisc add dev eth0 root handle d5c: htb default 2');
  assert.equal(follow.last!.what, 'reinstalled');
});

test('events for links not under control, or for another device of the name, change nothing', async () => {
  const { k, links, follow, list } = await setup();
  const plans = k.plans.length;
  add(k, links, 'veth7', 30);
  remove(k, links, 'veth7');
  // a removal of an older eth0 (index 4) than the one configured (5): not ours
  links.emit({ kind: 'removed', link: { index: 4, name: 'eth0', up: true } });
  links.table.set('eth0', 5);
  await follow.settled();
  assert.equal(k.plans.length, plans);
  assert.ok(list().interfaces.every((i) => i.present));
  assert.deepEqual(follow.counts, { gone: 0, restored: 0, renamed: 0, refused: 0 });
});

test('stopping removes what is in the kernel, nothing of an absent interface', async () => {
  const { k, links, tc, follow } = await setup();
  remove(k, links, 'eth0');
  await follow.settled();
  await follow.stop();
  await tc.stop();
  assert.deepEqual(k.last(), { tc: ['qdisc del dev eth1 root'], nft: ['delete table inet qosd_tc'], ip: [], dot1p: [] });
});
