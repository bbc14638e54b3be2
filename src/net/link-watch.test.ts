import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../clock.js';
import type { Exit } from '../exec.js';
import { LinkWatch, type Link, type LinkEvent, type LinkSource, type Monitor } from './link-watch.js';

const line = (index: number, name: string, up = true, deleted = false) =>
  `${deleted ? 'Deleted ' : ''}${index}: ${name}: <BROADCAST,MULTICAST${up ? ',UP,LOWER_UP' : ''}> mtu 1500 qdisc noqueue state ${up ? 'UP' : 'DOWN'} group default \\    link/ether 00:11:22:33:44:55 brd ff:ff:ff:ff:ff:ff`;

/** A kernel of links, a monitor that can be made to print and to die, snapshots on demand. */
class FakeSource implements LinkSource {
  links = new Map<number, Link>();
  monitors: Array<{ say: (l: string) => void; die: (e: Exit) => void; stopped: boolean; ready: () => void }> = [];
  snapshots = 0;
  /** lines the next monitor prints before the snapshot is taken */
  meanwhile: string[] = [];
  autoReady = true;

  snapshot(): Promise<Link[]> {
    this.snapshots++;
    return Promise.resolve([...this.links.values()]);
  }

  monitor(onLine: (line: string) => void): Monitor {
    let die!: (e: Exit) => void, ready!: () => void;
    const exited = new Promise<Exit>((r) => (die = r));
    const m = { say: onLine, die, stopped: false, ready: () => ready() };
    this.monitors.push(m);
    const readyP = new Promise<void>((r) => (ready = r));
    for (const l of this.meanwhile) onLine(l);
    this.meanwhile = [];
    if (this.autoReady) ready();
    return { ready: readyP, exited, pid: 4242, stop: async () => { m.stopped = true; die({ code: null, signal: 'SIGTERM' }); } };
  }

  /** A change in the kernel, printed by the live monitor if there is one. */
  change(l: Link | { index: number; deleted: true }): void {
    const live = this.monitors.at(-1);
    if ('deleted' in l) {
      const was = this.links.get(l.index)!;
      this.links.delete(l.index);
      if (live && !live.stopped) live.say(line(l.index, was.name, was.up, true));
    } else {
      this.links.set(l.index, l);
      if (live && !live.stopped) live.say(line(l.index, l.name, l.up));
    }
  }
}

const settle = () => new Promise((r) => setImmediate(r));
const show = (e: LinkEvent) => `${e.kind} ${e.link.name}${e.kind === 'renamed' ? ` from ${e.from}` : ''}`;

test('the first snapshot adds every link; monitor lines then make the events, table updated before followers hear', async () => {
  const src = new FakeSource();
  src.links.set(1, { index: 1, name: 'lo', up: true });
  src.links.set(2, { index: 2, name: 'eth0', up: true });
  const w = new LinkWatch({ source: src, clock: new ManualClock() });
  const seen: string[] = [];
  w.subscribe((e) => { seen.push(show(e)); assert.equal(w.byName(e.link.name)?.index, e.kind === 'removed' ? undefined : e.link.index); });
  await w.start();
  assert.deepEqual(seen, ['added lo', 'added eth0']);
  src.change({ index: 2, name: 'eth0', up: false });
  src.change({ index: 2, name: 'wan0', up: false });
  src.change({ index: 2, deleted: true });
  src.change({ index: 3, name: 'wan0', up: true });
  assert.deepEqual(seen.slice(2), ['down eth0', 'renamed wan0 from eth0', 'removed wan0', 'added wan0']);
  assert.deepEqual(w.all().map((l) => l.index), [1, 3]);
  await w.stop();
  assert.equal(src.monitors[0]!.stopped, true);
});

test('lines printed before the snapshot are applied after it, the last of each link only', async () => {
  const src = new FakeSource();
  src.links.set(2, { index: 2, name: 'eth0', up: true });
  // the monitor saw eth0 go down and up again and a link come and go before the snapshot
  src.meanwhile = [line(2, 'eth0', false), line(2, 'eth0', true), line(5, 'tmp0'), line(5, 'tmp0', true, true)];
  const w = new LinkWatch({ source: src, clock: new ManualClock() });
  const seen: string[] = [];
  w.subscribe((e) => seen.push(show(e)));
  await w.start();
  assert.deepEqual(seen, ['added eth0'], 'nothing the snapshot did not already show');
  await w.stop();
});

test('the snapshot waits until the monitor listens: a change in between is in one or the other', async () => {
  const src = new FakeSource();
  src.autoReady = false;
  const w = new LinkWatch({ source: src, clock: new ManualClock() });
  const seen: string[] = [];
  w.subscribe((e) => seen.push(show(e)));
  const started = w.start();
  await settle();
  assert.equal(src.snapshots, 0, 'no snapshot before the monitor has subscribed');
  src.change({ index: 7, name: 'new0', up: true });
  src.monitors[0]!.ready();
  await started;
  assert.deepEqual(seen, ['added new0']);
  await w.stop();
});

test('a killed monitor is started again after a back-off, and what changed meanwhile comes from a fresh snapshot', async () => {
  const src = new FakeSource();
  src.links.set(2, { index: 2, name: 'eth0', up: true });
  src.links.set(3, { index: 3, name: 'eth1', up: true });
  const clock = new ManualClock();
  const w = new LinkWatch({ source: src, clock, backoffMs: 100, maxBackoffMs: 400 });
  const seen: string[] = [];
  w.subscribe((e) => seen.push(show(e)));
  await w.start();
  seen.length = 0;
  src.monitors[0]!.die({ code: null, signal: 'SIGKILL' });
  await settle();
  assert.deepEqual(w.status().links, { interfaces: 2, monitor: 'restarting', monitor_pid: null, restarts: 0, last_exit: w.lastExit });
  assert.match(w.lastExit!.how, /SIGKILL/);
  // while it is away: eth0 deleted, eth1 renamed (no monitor prints them)
  src.change({ index: 2, deleted: true });
  src.change({ index: 3, name: 'lan1', up: true });
  clock.advance(99);
  await settle();
  assert.equal(src.monitors.length, 1, 'not before the back-off');
  clock.advance(1);
  await settle();
  assert.equal(src.monitors.length, 2);
  assert.equal(w.restarts, 1);
  assert.deepEqual(seen, ['removed eth0', 'renamed lan1 from eth1']);
  // dying again at once: the wait doubles, up to its bound
  for (const wait of [200, 400, 400]) {
    src.monitors.at(-1)!.die({ code: 1, signal: null });
    await settle();
    const n: number = src.monitors.length;
    clock.advance(wait - 1);
    await settle();
    assert.equal(src.monitors.length, n);
    clock.advance(1);
    await settle();
    assert.equal(src.monitors.length, n + 1, `started again after ${wait} ms`);
  }
  await w.stop();
  src.monitors.at(-1)!.die({ code: 0, signal: null });
  clock.advance(10_000);
  await settle();
  assert.equal(src.monitors.length, 5, 'stopped: no restart');
});

test('a follower that throws is logged; the others still hear the event', async () => {
  const src = new FakeSource();
  const errors: unknown[] = [];
  const log = { debug() {}, error(o: unknown) { errors.push(o); }, warn() {}, info() {} } as unknown as import('pino').Logger;
  const w = new LinkWatch({ source: src, clock: new ManualClock(), log });
  const seen: string[] = [];
  w.subscribe(() => { throw new Error('boom'); });
  const off = w.subscribe((e) => seen.push(show(e)));
  await w.start();
  src.change({ index: 4, name: 'x0', up: true });
  off();
  src.change({ index: 5, name: 'x1', up: true });
  assert.deepEqual(seen, ['added x0']);
  assert.equal(errors.length, 2);
  await w.stop();
});
