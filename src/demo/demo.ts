/* `qos demo`: the paper's section 5 experiment, measured. Builds the network (net.ts), then
 * runs the same scenario twice, without the policy daemon and with it (and with --reserve a
 * third time, the media reserved by RSVP through `qos rsvp router`: reservation.ts): an
 * unmodified media application under `qos run` on the source host, on/off cross traffic,
 * packet captures at the source and the sink, the router's class counters sampled. Figures:
 * analyze.ts. */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LiveCapture } from '../capture/live.js';
import { TCP_ACK, TCP_SYN, type Packet } from '../capture/pcap.js';
import { DaemonChild, QOS_CLI } from '../daemon/child.js';
import { QosError } from '../errors.js';
import { installed, run, start, type Child } from '../exec.js';
import { quoteElement } from '../protocol/tcl-list.js';
import { analyzeRun, type Arrival, type Burst, type ClassSample, type RunFigures, type SentDatagram } from './analyze.js';
import { DemoNet, demoUnavailable, removeStale, type IpFamily } from './net.js';
import { joinHostPort, nowUs, sleep } from './programs.js';
import { classCounters, DEFAULT_WEIGHTS, type SchedulerKind } from '../tc/htb.js';
import { bestEffortLimit, IPERF_DATAGRAM, reservationFigures, reserveFlowspec, reservePolicy, RSVP_CLASSES, rsvpClassCounters, type Notification, type ReservationFigures, type RouterLine } from './reservation.js';

const HERE = resolve(fileURLToPath(import.meta.url), '..');
const MEDIA_JS = join(HERE, 'media-app.js');
const CROSS_JS = join(HERE, 'crossgen.js');
const SINK_JS = join(HERE, 'sink.js');

const MEDIA_PORT = 5004, CONTROL_PORT = 5005, CROSS_PORT = 9000, IPERF_PORT = 5201;
/** Cross-traffic packets are 1,498 bytes in either family: the payload is what is left after
 * the IP header (20 or 40 bytes) and UDP's 8, so no datagram is fragmented on a 1,500 MTU. */
const CROSS_PAYLOAD: Record<IpFamily, number> = { 4: 1498 - 28, 6: 1498 - 48 };
/** The media's call control connection opens this long after the first burst begins. */
const CONTROL_INTO_BURST_MS = 500;
const CLASS_SAMPLE_MS = 250;
/** Marks the demo's policy gives (see policyTcl). */
export const MEDIA_TOS = 184, CONTROL_TOS = 72;

export type DemoApp = 'media' | 'iperf3';
export type RunName = 'unmarked' | 'marked' | 'reserved';

export interface DemoOptions {
  app: DemoApp;
  /** the IP version the media, its call control and the cross traffic use */
  family: IpFamily;
  scheduler: SchedulerKind;
  weights: number[];
  bottleneckBps: number;
  accessBps: number;
  queuePackets: number;
  onMs: number;
  offMs: number;
  cycles: number;
  /** media alone before the first burst */
  warmupMs: number;
  kbps: number;
  fps: number;
  progress?: (m: string) => void;
}

export const DEMO_DEFAULTS: DemoOptions = {
  app: 'media', family: 4, scheduler: 'wfq', weights: [...DEFAULT_WEIGHTS], bottleneckBps: 10e6, accessBps: 100e6, queuePackets: 100,
  onMs: 2000, offMs: 2000, cycles: 4, warmupMs: 2000, kbps: 400, fps: 25,
};

export interface RunResult extends RunFigures {
  daemon: boolean;
  /** what the application itself reported (the media app's JSON, or iperf3's loss and jitter) */
  app_report: Record<string, unknown> | null;
  /** packets the router dropped during the run, by precedence */
  router_drops: number[];
  /** bytes the router sent during the run, by precedence */
  router_bytes: number[];
  /** what router_drops and router_bytes count, when not the eight precedences (the reserved
   * run: the RSVP router's classes, RSVP_CLASSES) */
  router_classes?: string[];
  /** the reserved run: what was reserved, when the Resv came, what the router installed */
  reservation?: ReservationFigures;
}

export interface DemoResult {
  setup: Omit<DemoOptions, 'progress'> & { topology: Record<string, string> };
  runs: Partial<Record<RunName, RunResult>>;
}

/** The policy of the demonstration: the paper's Figure 5 with the command line changed, and
 * marks that mean something to a router queueing by precedence. */
export function policyTcl(cmd: string): string {
  return `#
# qos demo: the paper's Figure 5, with three changes. The command-line string is this demo's
# media application. The marks are TOS ${MEDIA_TOS} (DSCP EF, precedence 5) for its datagrams and
# TOS ${CONTROL_TOS} (DSCP AF21, precedence 2) for its TCP: the paper's TOS 48 and 16 would be
# precedence 1 and 0 at a router that queues by precedence, as the demonstration's does.
# Datagrams are media over IPv6 too (the agent sets the traffic class from TOS).
#
source SprintLib.tcl

set MediaStr ${quoteElement(cmd)}

proc Socket { pid uid cmd family type protocol fd } {
    global MediaStr AF SockType
    if {[string compare $cmd $MediaStr] == 0} {
        if { ($family == $AF(INET) || $family == $AF(INET6))
             && $type == $SockType(DGRAM) } {
            # High priority to the media datagrams
            return "TOS ${MEDIA_TOS}"
        } else {
            # Some help to TCP (call control)
            return "TOS ${CONTROL_TOS}"
        }
    }
}
`;
}

/** The JSON lines `qos rsvp router --json` printed. */
function routerLines(text: string): RouterLine[] {
  const out: RouterLine[] = [];
  for (const l of text.split('\n')) {
    if (!l.trim()) continue;
    try { out.push(JSON.parse(l) as RouterLine); } catch { /* not a JSON line */ }
  }
  return out;
}

function lastJson(text: string): Record<string, unknown> | null {
  const lines = text.trim().split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    try { return JSON.parse(lines[i]!) as Record<string, unknown>; } catch { /* not this line */ }
  }
  return null;
}

/** iperf3's own figures from its --json output (the server's loss and jitter, which the
 * client reports for UDP). */
function iperfReport(text: string): Record<string, unknown> | null {
  try {
    const j = JSON.parse(text) as { end?: { sum?: Record<string, number> }; error?: string };
    if (j.error) return { error: j.error };
    const s = j.end?.sum ?? {};
    return { packets: s.packets ?? null, lost_packets: s.lost_packets ?? null, lost_percent: s.lost_percent ?? null, jitter_ms: s.jitter_ms ?? null, mbps: s.bits_per_second !== undefined ? s.bits_per_second / 1e6 : null };
  } catch {
    return null;
  }
}

class Demo {
  private readonly procs: Child[] = [];
  private readonly daemons: DaemonChild[] = [];
  private readonly captures: LiveCapture[] = [];
  private readonly dir = mkdtempSync(join(tmpdir(), 'qosd-demo-'));
  /** whether the net's queues are qosd's (a reserved run), to be restored */
  private queuesHandedOver = false;

  constructor(private readonly net: DemoNet, private readonly o: DemoOptions) {}

  /** Starts argv in namespace ns; name: what messages call it. */
  private spawn(ns: string, argv: string[], name: string): Child {
    const p = start(argv, { netns: ns, name, keepStdout: true, code: 'QOS_ERR_INTERNAL' });
    this.procs.push(p);
    return p;
  }

  /** The application's command line (argv exactly as `qos run` executes it). */
  private appArgv(durationMs: number): string[] {
    const sink = this.net.sink.ip[this.o.family];
    if (this.o.app === 'iperf3') {
      const secs = Math.max(1, Math.floor(durationMs / 1000));
      return ['iperf3', '-u', '-c', sink, '-p', String(IPERF_PORT), '-b', `${this.o.kbps}K`, '-l', String(IPERF_DATAGRAM), '-t', String(secs), '--json'];
    }
    return [process.execPath, MEDIA_JS, '--to', joinHostPort(sink, MEDIA_PORT), '--control', joinHostPort(sink, CONTROL_PORT),
      '--control-at', String(this.o.warmupMs + CONTROL_INTO_BURST_MS), '--duration', String(durationMs / 1000), '--fps', String(this.o.fps), '--kbps', String(this.o.kbps)];
  }

  /** The reserved run's other parties, started before the application: `qos rsvp router` on
   * the router, owning the bottleneck's queues (its link rate; admission and an HTB class per
   * reservation), the sink host's daemon answering every Path with a Controlled Load Resv
   * (AutoRESV), and the source host's daemon whose policy reserves the media's datagrams,
   * admitting the Resv on its own access link and marking the flow only then. */
  private async startReservation(dir: string, appMs: number, port: number): Promise<{ router: Child; source: DaemonChild; flowspec: ReturnType<typeof reserveFlowspec>; bestEffortQueue: number | null }> {
    const o = this.o, net = this.net;
    const flowspec = reserveFlowspec({ app: o.app, kbps: o.kbps, fps: o.fps, family: o.family, durationS: appMs / 1000 });
    net.handOverQueues();
    this.queuesHandedOver = true;
    mkdirSync(join(dir, 'router'));
    mkdirSync(join(dir, 'sink'));
    const router = this.spawn(net.router.ns, [process.execPath, QOS_CLI, 'rsvp', 'router', '--json', '--link', `${net.router.bottleneck}=${Math.round(o.bottleneckBps)}bit`, '--state-dir', join(dir, 'router')], 'qos rsvp router');
    await router.until('"ready"', 20_000, 'stdout');
    const { stdout } = await run(['tc', '-j', 'qdisc', 'show', 'dev', net.router.bottleneck, 'invisible'], { netns: net.router.ns });
    const bestEffortQueue = bestEffortLimit(stdout);
    const rsvp = ['--kernel', 'off', '--rsvp', 'on'];
    const sink = new DaemonChild(join(dir, 'sink'), null, [...rsvp, '--tc', 'off', '--rsvp-auto-resv', 'cl'], ['ip', 'netns', 'exec', net.sink.ns]);
    this.daemons.push(sink);
    await sink.start();
    const source = new DaemonChild(dir, reservePolicy(o.app, port, flowspec), [...rsvp, '--tc', 'on', '--rsvp-link', `${net.source.dev}=${Math.round(o.accessBps)}bit`], ['ip', 'netns', 'exec', net.source.ns]);
    // the source's daemon first in the list: stopped first, its PathTear reaches a running router
    this.daemons.unshift(source);
    await source.start();
    return { router, source, flowspec, bestEffortQueue };
  }

  async run(name: RunName): Promise<RunResult> {
    const o = this.o, net = this.net, marked = name === 'marked', reserved = name === 'reserved';
    const iperf = o.app === 'iperf3';
    const mediaPort = iperf ? IPERF_PORT : MEDIA_PORT, controlPort = iperf ? IPERF_PORT : CONTROL_PORT;
    const cycleMs = o.cycles * (o.onMs + o.offMs);
    // The media app streams through the warm-up and every cycle; iperf3 is started half a
    // burst in (its control connection opens first) and streams to the end.
    const appMs = iperf ? cycleMs - CONTROL_INTO_BURST_MS : o.warmupMs + cycleMs;
    const argv = this.appArgv(appMs);

    const sinkProc = this.spawn(net.sink.ns, [process.execPath, SINK_JS, '--udp', String(CROSS_PORT), ...(iperf ? [] : ['--udp', String(MEDIA_PORT), '--tcp', String(CONTROL_PORT)])], 'the sink');
    await sinkProc.until('ready', 10_000, 'stdout');
    if (iperf) await this.spawn(net.sink.ns, ['iperf3', '-s', '-1', '--forceflush', '-p', String(IPERF_PORT)], 'iperf3 -s').until('listening', 10_000, 'stdout');

    const dir = join(this.dir, name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    const socket = join(dir, 'agent.sock');
    if (marked) {
      writeFileSync(join(dir, 'demo.tcl'), policyTcl(argv.join(' ')));
      const d = new DaemonChild(dir, 'script: demo.tcl\n', [], ['ip', 'netns', 'exec', net.source.ns]);
      this.daemons.push(d);
      await d.start();
    }
    const reservation = reserved ? await this.startReservation(dir, appMs, mediaPort) : null;

    const sent: SentDatagram[] = [];
    const received = new Map<string, number>();
    const cross: Arrival[] = [];
    let synUs: number | null = null, synAckUs: number | null = null, synTos: number | null = null;
    const usOf = (p: Packet) => Number(p.tsNs / 1000n);
    const keyOf = (p: Packet) => (p.payload.length >= 12 ? p.payload.subarray(0, 16).toString('hex') : null);
    const sinkIp = net.sink.ip[o.family];
    // The handshake is picked out here, not in the filter: libpcap's tcp[...] reads IPv4 only.
    const srcCap = new LiveCapture({ netns: net.source.ns, iface: net.source.dev, filter: `(udp and dst host ${sinkIp} and dst port ${mediaPort}) or (tcp and host ${sinkIp} and port ${controlPort})` }, (p) => {
      if (p.proto === 17) {
        const key = keyOf(p);
        if (key) sent.push({ key, tUs: usOf(p), tos: p.tos, bytes: p.ipLength, family: p.family });
      } else if (p.proto === 6 && p.dport === controlPort && (p.tcpFlags & (TCP_SYN | TCP_ACK)) === TCP_SYN && synUs === null) {
        synUs = usOf(p);
        synTos = p.tos;
      } else if (p.proto === 6 && p.sport === controlPort && (p.tcpFlags & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK) && synUs !== null && synAckUs === null) {
        synAckUs = usOf(p);
      }
    });
    const sinkCap = new LiveCapture({ netns: net.sink.ns, iface: net.sink.dev, filter: `udp and (dst port ${mediaPort} or dst port ${CROSS_PORT})` }, (p) => {
      if (p.dport === CROSS_PORT) cross.push({ tUs: usOf(p), bytes: p.ipLength });
      else {
        const key = keyOf(p);
        if (key && !received.has(key)) received.set(key, usOf(p));
      }
    });
    this.captures.push(srcCap, sinkCap);
    await Promise.all([srcCap.start(), sinkCap.start()]);

    const classes: ClassSample[] = [];
    let sampling = true;
    const counters = reserved ? rsvpClassCounters : classCounters;
    // the RSVP router's class queues are HTB's default ones, which tc lists only when asked
    const show = ['tc', '-s', '-j', 'qdisc', 'show', 'dev', net.router.bottleneck, ...(reserved ? ['invisible'] : [])];
    const sample = (): Promise<void> => run(show, { netns: net.router.ns }).then(({ stdout }) => {
      const t = nowUs();
      try { classes.push({ tUs: t, ...counters(stdout) }); } catch { /* skip a bad sample */ }
    }, () => undefined);
    const sampler = (async () => {
      while (sampling) {
        const t = performance.now();
        await sample();
        await sleep(CLASS_SAMPLE_MS - (performance.now() - t));
      }
      await sample();
    })();

    const startUs = nowUs();
    const runArgv = [process.execPath, QOS_CLI, 'run', '--socket', socket, '--', ...argv];
    const appName = iperf ? 'iperf3 -c' : 'the media application';
    let app = iperf ? null : this.spawn(net.source.ns, runArgv, appName);
    await sleep(o.warmupMs);
    const crossProc = this.spawn(net.cross.ns, [process.execPath, CROSS_JS, '--to', joinHostPort(sinkIp, CROSS_PORT), '--size', String(CROSS_PAYLOAD[o.family]),
      '--on-ms', String(o.onMs), '--off-ms', String(o.offMs), '--cycles', String(o.cycles)], 'the cross-traffic generator');
    if (iperf) {
      await sleep(CONTROL_INTO_BURST_MS);
      app = this.spawn(net.source.ns, runArgv, appName);
    }
    await crossProc.wait([0], cycleMs + 20_000);
    await app!.wait([0], 30_000);
    await sleep(300); // the last datagrams through the router's queue
    sampling = false;
    await sampler;
    await Promise.all([srcCap.stop(), sinkCap.stop()]);
    const endUs = nowUs();
    // what the sending host was told, asked before its daemon stops
    const notes = reservation ? await this.notifications(reservation.source) : [];
    for (const d of this.daemons.splice(0)) await d.stop();
    if (reservation) {
      // SIGTERM: the router removes its reservations and queues; then the demo's come back
      await reservation.router.stop('SIGTERM', 20_000);
      this.net.restoreQueues();
      this.queuesHandedOver = false;
    }
    this.killAll();

    const bursts: Burst[] = crossProc.stdout.trim().split('\n').filter(Boolean).map((l) => {
      const b = JSON.parse(l) as { on: number; off: number };
      return { on: b.on, off: b.off };
    });
    if (!bursts.length) throw new QosError('QOS_ERR_INTERNAL', 'the cross-traffic generator reported no bursts');
    if (!sent.length) throw new QosError('QOS_ERR_INTERNAL', `no media datagrams were captured leaving the source: ${app!.stderr.trim().slice(0, 300)}`);
    const figures = analyzeRun({ startUs, endUs, sent, received, cross, bursts, synUs, synAckUs, synTos, classes, binUs: 2_000_000 });
    // what each class sent and dropped, summed over the samples: a reservation's class goes
    // when the application exits (PathTear), so its counters vanish before the last sample
    const during = (k: 'bytes' | 'drops') => {
      const sum = new Array<number>(reserved ? RSVP_CLASSES.length : 8).fill(0);
      for (let i = 1; i < classes.length; i++) classes[i]![k].forEach((x, c) => (sum[c]! += Math.max(0, x - classes[i - 1]![k][c]!)));
      return sum;
    };
    return {
      daemon: marked || reserved, ...figures,
      app_report: iperf ? iperfReport(app!.stdout) : lastJson(app!.stdout),
      router_drops: during('drops'),
      router_bytes: during('bytes'),
      ...(reservation ? {
        router_classes: [...RSVP_CLASSES],
        reservation: reservationFigures({
          flowspec: reservation.flowspec, bestEffortQueue: reservation.bestEffortQueue, notes, router: routerLines(reservation.router.stdout), bottleneck: net.router.bottleneck, port: mediaPort,
          sent: [...sent].sort((a, b) => a.tUs - b.tUs),
        }),
      } : {}),
    };
  }

  /** The sending host's status notifications (`qos rsvp events --json`). */
  private async notifications(d: DaemonChild): Promise<Notification[]> {
    const { stdout } = await run([process.execPath, QOS_CLI, 'rsvp', 'events', '--json', '--admin', d.admin], { timeoutMs: 10_000 });
    return stdout.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Notification);
  }

  private killAll(): void {
    for (const p of this.procs.splice(0)) p.kill();
  }

  /** Stops everything this demo started (the namespaces are the caller's). */
  async close(): Promise<void> {
    for (const c of this.captures.splice(0)) c.kill();
    this.killAll();
    for (const d of this.daemons.splice(0)) d.proc?.kill('SIGKILL');
    if (this.queuesHandedOver) {
      this.queuesHandedOver = false;
      try { this.net.restoreQueues(); } catch { /* the namespaces go next anyway */ }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Runs the demonstration: builds the network, runs each scenario, removes everything (also
 * on SIGINT/SIGTERM and on error). */
export async function runDemo(o: DemoOptions, runs: RunName[] = ['unmarked', 'marked']): Promise<DemoResult> {
  const why = demoUnavailable();
  if (why) throw new QosError('QOS_ERR_ENVIRONMENT', why);
  if (o.app === 'iperf3' && !installed('iperf3')) throw new QosError('QOS_ERR_ENVIRONMENT', 'qos demo --app iperf3 needs iperf3 (apt-get install iperf3)');
  const stale = removeStale();
  if (stale.length) o.progress?.(`removed ${stale.length} namespaces left by an earlier demo`);
  const net = new DemoNet({ accessBps: o.accessBps, scheduler: { kind: o.scheduler, linkBps: o.bottleneckBps, weights: o.weights, queuePackets: o.queuePackets } });
  const demo = new Demo(net, o);
  const onSignal = (sig: NodeJS.Signals) => {
    void demo.close().finally(() => {
      net.destroy();
      process.stderr.write(`qos demo: ${sig}: stopped, namespaces removed\n`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const result: DemoResult = {
      setup: {
        app: o.app, family: o.family, scheduler: o.scheduler, weights: o.weights, bottleneckBps: o.bottleneckBps, accessBps: o.accessBps, queuePackets: o.queuePackets,
        onMs: o.onMs, offMs: o.offMs, cycles: o.cycles, warmupMs: o.warmupMs, kbps: o.kbps, fps: o.fps,
        topology: { source: net.source.ip[o.family], cross: net.cross.ip[o.family], sink: net.sink.ip[o.family], router: net.router.ns },
      },
      runs: {},
    };
    for (const name of runs) {
      o.progress?.(name === 'reserved'
        ? `reserved run: the media reserved by RSVP (the policy's reserve, qos rsvp router on the bottleneck), ${o.cycles} bursts…`
        : `${name} run: ${name === 'marked' ? 'with' : 'without'} the policy daemon, ${o.cycles} bursts…`);
      result.runs[name] = await demo.run(name);
    }
    return result;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await demo.close();
    net.destroy();
  }
}
