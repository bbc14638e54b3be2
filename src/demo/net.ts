/* The demonstration network (paper figure 7) in network namespaces: a media source host and
 * a cross-traffic host on 100 Mb/s access links to a router, and a 10 Mb/s bottleneck from
 * the router to the sink host, queued by precedence (tc/htb.ts). Every host has an IPv4
 * and an IPv6 (unique local, RFC 4193) address, so a run may use either. Everything created here
 * carries the owner's pid in its name and is removed by destroy(), or by the next demo if
 * this process died before it could. */

import { installed, runSync } from '../exec.js';
import { linkPlan, schedulerPlan, type SchedulerOptions } from '../tc/htb.js';

export interface NetOptions {
  accessBps: number;
  scheduler: SchedulerOptions;
}

export type IpFamily = 4 | 6;

export interface Host {
  ns: string;
  ip: Record<IpFamily, string>;
  /** the interface towards the router */
  dev: string;
}

const PREFIX = 'qosdemo';
/** A veth's transmit queue length, packets. */
const DEFAULT_TXQUEUELEN = 1000;

/** Host n's addresses on the demo's subnet i: 10.91.i.n/24 and fd00:91:i::n/64. */
function addresses(i: number, n: number): Record<IpFamily, string> {
  return { 4: `10.91.${i}.${n}`, 6: `fd00:91:${i}::${n}` };
}

/** Runs argv and returns its output; throws a QosError with its stderr if it fails. */
export function must(argv: string[]): string {
  return runSync(argv, { timeoutMs: 30_000 }).stdout;
}

/** Why the demonstration cannot run here, or null. */
export function demoUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'qos demo needs root: it creates network namespaces and queueing disciplines (run it with sudo)';
  for (const tool of ['ip', 'tc', 'tcpdump']) {
    if (!installed(tool)) return `qos demo needs \`${tool}\` (apt-get install ${tool === 'tcpdump' ? 'tcpdump' : 'iproute2'})`;
  }
  return null;
}

/** Whether process pid exists (another user's too: EPERM means it does). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes namespaces left by demos (or, given its prefix, another user of namespaces
 * named PREFIX<pid>-...) whose process is gone (killed before it cleaned up). */
export function removeStale(prefix = PREFIX): string[] {
  const removed: string[] = [];
  for (const line of runSync(['ip', 'netns', 'list'], { ok: 'any' }).stdout.split('\n')) {
    const m = new RegExp(`^(${prefix}(\\d+)-\\w+)`).exec(line);
    if (m && !alive(Number(m[2]))) {
      runSync(['ip', 'netns', 'del', m[1]!], { ok: 'any' });
      removed.push(m[1]!);
    }
  }
  return removed;
}

/** Deletes a network namespace, killing what still runs in it first (a process left in a
 * namespace would outlive its name). */
export function removeNamespace(ns: string): void {
  const pids = runSync(['ip', 'netns', 'pids', ns], { ok: 'any' }).stdout;
  for (const pid of pids.split(/\s+/).filter(Boolean)) {
    try { process.kill(Number(pid), 'SIGKILL'); } catch { /* already gone */ }
  }
  runSync(['ip', 'netns', 'del', ns], { ok: 'any' });
}

export class DemoNet {
  readonly tag = `${PREFIX}${process.pid}`;
  readonly source: Host = { ns: `${this.tag}-src`, ip: addresses(1, 2), dev: 'up0' };
  readonly cross: Host = { ns: `${this.tag}-xt`, ip: addresses(2, 2), dev: 'up0' };
  readonly sink: Host = { ns: `${this.tag}-snk`, ip: addresses(3, 2), dev: 'up0' };
  readonly router = { ns: `${this.tag}-rt`, bottleneck: 'snk0' };
  private created: string[] = [];

  /** Builds the namespaces, links, addresses, routes and queues; on any failure removes
   * what it made and throws. */
  constructor(readonly o: NetOptions) {
    try {
      this.build();
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  private build(): void {
    const rt = this.router.ns;
    for (const ns of [this.source.ns, this.cross.ns, rt, this.sink.ns]) {
      must(['ip', 'netns', 'add', ns]);
      this.created.push(ns);
      must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    }
    // Host h is .2 (::2) on subnet i, the router .1 (::1).
    const links: Array<[Host, string, number, number]> = [
      [this.source, 'src0', 1, this.o.accessBps],
      [this.cross, 'xt0', 2, this.o.accessBps],
      [this.sink, 'snk0', 3, this.o.scheduler.linkBps],
    ];
    for (const [h, rdev, subnet, bps] of links) {
      must(['ip', 'link', 'add', h.dev, 'netns', h.ns, 'type', 'veth', 'peer', 'name', rdev, 'netns', rt]);
      const rip = addresses(subnet, 1);
      for (const [ns, dev, ip] of [[h.ns, h.dev, h.ip], [rt, rdev, rip]] as const) {
        must(['ip', '-n', ns, 'addr', 'add', `${ip[4]}/24`, 'dev', dev]);
        // No duplicate address detection, for the link-local address either: a tentative
        // address holds IPv6 back for a second or more after the link comes up.
        must(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', `net.ipv6.conf.${dev}.accept_dad=0`]);
        must(['ip', '-n', ns, '-6', 'addr', 'add', `${ip[6]}/64`, 'dev', dev, 'nodad']);
        must(['ip', '-n', ns, 'link', 'set', dev, 'up']);
      }
      must(['ip', '-n', h.ns, 'route', 'add', 'default', 'via', rip[4]]);
      must(['ip', '-n', h.ns, '-6', 'route', 'add', 'default', 'via', rip[6]]);
      // Both directions of each link run at its rate; the router's side of the bottleneck
      // is the precedence scheduler.
      this.tc(h.ns, linkPlan(h.dev, bps));
      this.tc(rt, rdev === this.router.bottleneck ? schedulerPlan(rdev, this.o.scheduler) : linkPlan(rdev, bps));
    }
    must(['ip', 'netns', 'exec', rt, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  }

  /** Hands the source's access link and the router's side of the bottleneck to qosd's traffic
   * control for a reserved run (`qos demo --reserve`): their root qdiscs go, since the sending
   * host's daemon (`--rsvp-link`) and `qos rsvp router` (`--link`) each install their own HTB
   * at the same link rate and refuse an interface with a root that is not theirs. The
   * bottleneck's transmit queue length becomes queuePackets: the length of the queues the
   * router's classes get by default (best effort's and a reservation's), as each precedence
   * class had. restoreQueues() puts back what build() made. */
  handOverQueues(): void {
    must(['ip', 'netns', 'exec', this.source.ns, 'tc', 'qdisc', 'del', 'dev', this.source.dev, 'root']);
    must(['ip', 'netns', 'exec', this.router.ns, 'tc', 'qdisc', 'del', 'dev', this.router.bottleneck, 'root']);
    must(['ip', '-n', this.router.ns, 'link', 'set', this.router.bottleneck, 'txqueuelen', String(this.o.scheduler.queuePackets)]);
  }

  /** The source's access link and the router's precedence scheduler as build() made them
   * (whatever root qdisc is there now goes first). */
  restoreQueues(): void {
    for (const [ns, dev] of [[this.source.ns, this.source.dev], [this.router.ns, this.router.bottleneck]] as const) {
      runSync(['ip', 'netns', 'exec', ns, 'tc', 'qdisc', 'del', 'dev', dev, 'root'], { ok: 'any' });
    }
    must(['ip', '-n', this.router.ns, 'link', 'set', this.router.bottleneck, 'txqueuelen', String(DEFAULT_TXQUEUELEN)]);
    this.tc(this.source.ns, linkPlan(this.source.dev, this.o.accessBps));
    this.tc(this.router.ns, schedulerPlan(this.router.bottleneck, this.o.scheduler));
  }

  private tc(ns: string, plan: string[][]): void {
    for (const argv of plan) must(['ip', 'netns', 'exec', ns, 'tc', ...argv]);
  }

  /** Removes every namespace this demo made (their links and queues go with them). */
  destroy(): void {
    for (const ns of this.created.splice(0).reverse()) removeNamespace(ns);
  }
}
