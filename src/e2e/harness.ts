/* End-to-end test harness: two network namespaces joined by a veth pair (client and server),
 * a daemon under test, packet capture with tcpdump in the server namespace and decoding with
 * tshark (an independent decoder). Everything created here is removed in cleanup(). */

import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DaemonChild } from '../daemon/child.js';
import { runSync, start, type Child } from '../exec.js';
import { requireRoot, requireTools } from '../prerequisites.js';

export const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
export const QOS = join(ROOT, 'dist/cli/main.js');
export const AGENT_TEST_BIN = join(ROOT, 'agent/build/test');

/** Fails the test file, naming the package, unless the end-to-end tests can run here. */
export function requireE2e(...more: string[]): void {
  requireRoot('they create network namespaces');
  requireTools('ip', 'tcpdump', 'tshark', ...more);
}

/** Runs argv to its end, whatever its exit status (a missing program, a signal or a timeout
 * throw, naming it). */
export function sh(argv: string[], opts: { input?: string; timeout?: number; env?: NodeJS.ProcessEnv } = {}): { status: number | null; stdout: string; stderr: string } {
  const r = runSync(argv, { input: opts.input, timeoutMs: opts.timeout ?? 60_000, maxOutput: 256 << 20, env: opts.env, ok: 'any' });
  return { status: r.code, stdout: r.stdout, stderr: r.stderr };
}

/** Runs argv; throws with its stderr unless it exits 0. */
function must(argv: string[]): string {
  return runSync(argv, { timeoutMs: 60_000 }).stdout;
}

let beds = 0;
let files = 0;

/** Client and server namespaces on one veth link, IPv4 and IPv6. */
export class Testbed {
  readonly n = ++beds;
  readonly id = `q${process.pid % 10000}x${this.n}`;
  readonly client = `${this.id}c`;
  readonly server = `${this.id}s`;
  readonly net = 200 + (process.pid % 50);
  readonly clientIp = `10.${this.net}.${this.n}.1`;
  readonly serverIp = `10.${this.net}.${this.n}.2`;
  readonly clientIp6 = `fd00:${this.net}:${this.n}::1`;
  readonly serverIp6 = `fd00:${this.net}:${this.n}::2`;
  readonly serverIf = `${this.id}s0`;
  readonly dir = mkdtempSync(join(tmpdir(), 'qosd-e2e-'));
  private procs: Child[] = [];

  constructor() {
    try {
      must(['ip', 'netns', 'add', this.client]);
      must(['ip', 'netns', 'add', this.server]);
      for (const ns of [this.client, this.server]) must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      this.addLink();
      this.configureLink();
    } catch (e) {
      this.cleanup();
      throw e;
    }
  }

  /** Makes the veth pair between the namespaces (its client end named `clientIf`), down and
   * without addresses (configureLink() gives them); returns when (performance.now()) it ran
   * `ip link add`. Tests of interfaces that come and go delete it and make it again. */
  addLink(clientIf = `${this.id}c0`): number {
    const at = performance.now();
    must(['ip', 'link', 'add', clientIf, 'netns', this.client, 'type', 'veth', 'peer', 'name', this.serverIf, 'netns', this.server]);
    return at;
  }

  /** Addresses, up and neighbour entries on both ends of the pair (again after a link went
   * down: IPv6 addresses and neighbour entries go with it). */
  configureLink(clientIf = `${this.id}c0`): void {
    for (const [ns, ifc, ip4, ip6] of [[this.client, clientIf, this.clientIp, this.clientIp6], [this.server, this.serverIf, this.serverIp, this.serverIp6]] as const) {
      must(['ip', '-n', ns, 'addr', 'replace', `${ip4}/24`, 'dev', ifc]);
      // no duplicate address detection, for the link-local address too: a tentative
      // address holds IPv6 traffic back for a second or more after the link comes up
      must(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', `net.ipv6.conf.${ifc}.accept_dad=0`]);
      must(['ip', '-n', ns, '-6', 'addr', 'replace', `${ip6}/64`, 'dev', ifc, 'nodad']);
      must(['ip', '-n', ns, 'link', 'set', ifc, 'up']);
    }
    // permanent neighbour entries: no packet of a test waits on (or is lost to) ARP or
    // neighbour discovery on a link that just came up
    const mac = (ns: string, ifc: string) => (JSON.parse(must(['ip', '-n', ns, '-j', 'link', 'show', ifc])) as { address: string }[])[0]!.address;
    const cmac = mac(this.client, clientIf), smac = mac(this.server, this.serverIf);
    for (const ip of [this.serverIp, this.serverIp6]) must(['ip', '-n', this.client, 'neigh', 'replace', ip, 'lladdr', smac, 'dev', clientIf, 'nud', 'permanent']);
    for (const ip of [this.clientIp, this.clientIp6]) must(['ip', '-n', this.server, 'neigh', 'replace', ip, 'lladdr', cmac, 'dev', this.serverIf, 'nud', 'permanent']);
  }

  /** Starts a long-running process (in a namespace if given); killed at cleanup. */
  start(argv: string[], ns?: string, env?: NodeJS.ProcessEnv): ChildProcess {
    const p = start(argv, { netns: ns, env });
    p.proc.stdout!.resume();
    this.procs.push(p);
    return p.proc;
  }

  /** Runs a command in the client namespace and waits for it. */
  inClient(argv: string[], opts: { timeout?: number; env?: NodeJS.ProcessEnv; input?: string } = {}) {
    return sh(['ip', 'netns', 'exec', this.client, ...argv], opts);
  }

  /** Starts tcpdump on the server's interface (or, on: 'client', on the client's, where a burst
   * is seen whole: the server's receive queue may drop part of it); resolves once it is
   * listening. */
  async capture(filter: string, on: 'server' | 'client' = 'server'): Promise<Capture> {
    const file = join(this.dir, `cap${files++}.pcap`);
    const [ns, ifc] = on === 'server' ? [this.server, this.serverIf] : [this.client, `${this.id}c0`];
    const p = start(['tcpdump', '-i', ifc, '--immediate-mode', '-B', '65536', '-U', '-n', '-w', file, `(${filter}) or (${ENDMARK_FILTER(this.clientIp)})`], { netns: ns, stdio: ['ignore', 'ignore', 'pipe'] });
    this.procs.push(p);
    await p.until('listening on', 60_000);
    return new Capture(p, file, this);
  }

  /** Counts, in the server's kernel (nftables, input hook), SYNs to port: all, and per DSCP
   * value given. Exact where a capture would drop packets under a burst. */
  synCounter(port: number, dscps: number[]): { read(): { total: number; byDscp: Map<number, number> } } {
    return this.counter(`tcp dport ${port} tcp flags & (syn|ack) == syn`, dscps);
  }

  /** Counts IPv4 packets the server receives that match an nft expression: all, and per DSCP
   * value given. */
  counter(match: string, dscps: number[]): { read(): { total: number; byDscp: Map<number, number> } } {
    const table = `qt${files++}`;
    const rules = dscps.map((d) => `    ${match} ip dscp ${d} counter comment "d${d}"`).join('\n');
    const file = join(this.dir, `${table}.nft`);
    writeFileSync(file, `table inet ${table} {\n  chain in {\n    type filter hook input priority 0;\n${rules}\n    ${match} counter comment "all"\n  }\n}\n`);
    must(['ip', 'netns', 'exec', this.server, 'nft', '-f', file]);
    return {
      read: () => {
        const j = JSON.parse(must(['ip', 'netns', 'exec', this.server, 'nft', '-j', 'list', 'table', 'inet', table])) as { nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[] };
        const byDscp = new Map<number, number>();
        let total = 0;
        for (const o of j.nftables) {
          const r = o.rule;
          const c = r?.expr.find((e) => e.counter)?.counter?.packets ?? 0;
          if (r?.comment === 'all') total = c;
          else if (r?.comment?.startsWith('d')) byDscp.set(Number(r.comment.slice(1)), c);
        }
        return { total, byDscp };
      },
    };
  }

  /** Starts a TCP server on port in the server namespace that reads and drops what it is
   * sent, and waits until it listens. */
  async sink(port: number): Promise<void> {
    this.start([process.execPath, '-e', `require('net').createServer((s) => s.resume()).listen(${port})`], this.server);
    await this.waitListening(port);
  }

  /** Starts a UDP server on each port in the server namespace (IPv4 and IPv6) that reads and
   * drops what it is sent, so that no datagram of a test draws an ICMP error (which would
   * change what a later send on a connected socket returns), and waits until it listens. */
  async udpSink(ports: number[]): Promise<void> {
    const code = `import select, socket
socks = []
for p in ${JSON.stringify(ports)}:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(('::', p))
    socks.append(s)
while True:
    for s in select.select(socks, [], [])[0]:
        s.recv(65536)`;
    this.start(['python3', '-c', code], this.server);
    for (const port of ports) await this.waitListening(port, 'udp');
  }

  /** Waits until something listens on a TCP/UDP port in the server namespace. */
  async waitListening(port: number, proto: 'tcp' | 'udp' = 'tcp'): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const r = sh(['ip', 'netns', 'exec', this.server, 'ss', '-Hln', proto === 'tcp' ? '-t' : '-u', `sport = :${port}`]);
      if (r.stdout.trim()) return;
      await sleep(50);
    }
    throw new Error(`nothing listens on ${proto}/${port} in ${this.server}`);
  }

  cleanup(): void {
    for (const p of this.procs) p.kill();
    // and what they started there: a program under a killed `qos run` would live on, holding
    // the test's pipes open, and the test file would never end
    for (const ns of [this.client, this.server]) {
      for (const pid of sh(['ip', 'netns', 'pids', ns]).stdout.split('\n').filter(Boolean)) {
        try { process.kill(Number(pid), 'SIGKILL'); } catch { /* gone meanwhile */ }
      }
    }
    sh(['ip', 'netns', 'del', this.client]);
    sh(['ip', 'netns', 'del', this.server]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The capture's end mark: a datagram from the client that every capture takes besides its
 * own filter, and that packets() leaves out. */
const ENDMARK_PORT = 9;
const ENDMARK_FILTER = (client: string) => `udp and dst port ${ENDMARK_PORT} and src host ${client}`;
let endmarks = 0;

/** Stops a tcpdump writing `file` once every packet it was to see before the call is in the
 * file: `send` puts an end mark on the wire after them (again every 250 ms until it shows), and
 * tcpdump gets its SIGINT only once it has written the mark (a waiting time would be a guess,
 * too short on a loaded machine, where tcpdump may not yet have read what the kernel holds for
 * it, and SIGINT drops that). The mark is a string unique to the call, given to `send`. */
export async function stopAtEndMark(tcpdump: Child, file: string, send: (mark: string) => void): Promise<void> {
  const mark = `qosd-capture-end-${process.pid}-${++endmarks}`;
  await waitFor(`the capture's end mark in ${file}`, () => {
    let seen = false;
    try { seen = readFileSync(file).includes(mark); } catch { /* not written yet */ }
    if (!seen) send(mark);
    return seen;
  }, 250);
  await tcpdump.stop('SIGINT');
}

export class Capture {
  constructor(private readonly proc: Child, readonly file: string, private readonly tb: Testbed) {}

  /** Stops the capture and returns the packets decoded by tshark. Every packet sent before
   * the call is in it: the client sends an end mark after them, and the capture is stopped
   * only once tcpdump has written that mark (a waiting time would be a guess, too short on a
   * loaded machine). */
  async packets(): Promise<Packet[]> {
    await stopAtEndMark(this.proc, this.file, (mark) => sh(['ip', 'netns', 'exec', this.tb.client, 'bash', '-c', `printf %s "$1" > /dev/udp/$2/${ENDMARK_PORT}`, 'endmark', mark, this.tb.serverIp]));
    const fields = ['ip.version', 'ip.dsfield.dscp', 'ipv6.tclass', 'ip.proto', 'ipv6.nxt', 'tcp.srcport', 'tcp.dstport', 'udp.srcport', 'udp.dstport', 'tcp.flags.syn', 'tcp.flags.ack', 'ip.src', 'ipv6.src'];
    const out = must(['tshark', '-r', this.file, '-T', 'fields', ...fields.flatMap((f) => ['-e', f]), '-E', 'separator=|', '-E', 'occurrence=f']);
    const all = out.split('\n').filter(Boolean).map((l): Packet => {
      const [v, dscp4, tclass6, p4, p6, tsp, tdp, usp, udp, syn, ack, src4, src6] = l.split('|');
      const v6 = v !== '4';
      const proto = Number(v6 ? p6 : p4);
      return {
        ipv6: v6,
        dscp: v6 ? Number(tclass6) >> 2 : Number(dscp4),
        proto: proto === 6 ? 'tcp' : proto === 17 ? 'udp' : String(proto),
        srcPort: Number(tsp || usp),
        dstPort: Number(tdp || udp),
        syn: syn === '1' || syn === 'True', ack: ack === '1' || ack === 'True',
        src: (v6 ? src6 : src4) ?? '',
      };
    });
    return all.filter((p) => !(p.proto === 'udp' && p.dstPort === ENDMARK_PORT && p.src === this.tb.clientIp));
  }
}

/** The cgroup v2 hierarchy (the unified one of Debian's hybrid). */
export const CGROUP2 = '/sys/fs/cgroup/unified';

/** A cgroup v2 directory of a test's own, qosd-NAME-PID: the daemon's eBPF programs attach to a
 * cgroup, not a namespace (--ebpf-cgroup), and the programs a test runs join it. */
export class TestCgroup {
  readonly dir: string;

  constructor(name: string) {
    this.dir = join(CGROUP2, `qosd-${name}-${process.pid}`);
    mkdirSync(this.dir);
  }

  /** argv run in this cgroup and network namespace ns: the process joins the cgroup first
   * (`ip netns exec` mounts a sysfs of its own, where the cgroup is not). */
  argv(ns: string, argv: readonly string[]): string[] {
    return ['sh', '-c', `echo $$ > ${this.dir}/cgroup.procs && ns=$1 && shift && exec ip netns exec "$ns" "$@"`, 'sh', ns, ...argv];
  }

  remove(): void {
    try { rmdirSync(this.dir); } catch { /* a process still in it: none should be */ }
  }
}

export interface Packet { ipv6: boolean; dscp: number; proto: string; srcPort: number; dstPort: number; syn: boolean; ack: boolean; src: string }

/** A daemon under test, with the argv prefix that runs a program under the agent against it.
 * The agent waits up to AGENT_TIMEOUT_MS for an answer: a test of what the policy decides must
 * not depend on the machine's speed (with the default 50 ms, a daemon slowed by a loaded
 * machine is given up on and the program goes unmarked: fail-open, not the case under test).
 * Tests of fail-open give their own timeout. */
export const AGENT_TIMEOUT_MS = 5000;
export class TestDaemon extends DaemonChild {
  run(...argv: string[]): string[] {
    return [process.execPath, QOS, 'run', '--socket', this.socket, '--timeout-ms', String(AGENT_TIMEOUT_MS), '--', ...argv];
  }

  /** Runs argv in the client namespace three ways, each with its own capture of filter (on the
   * server's interface, or the client's): under the agent with this daemon, under the agent
   * with no daemon at all (a socket path nobody listens on), and without the agent. */
  async threeWays(tb: Testbed, argv: string[], filter: string, on: 'server' | 'client' = 'server'): Promise<Record<'agent' | 'noDaemon' | 'plain', Run & { packets: Packet[] }>> {
    const nobody = join(tb.dir, `nobody${files++}.sock`);
    const ways = {
      agent: this.run(...argv),
      noDaemon: [process.execPath, QOS, 'run', '--socket', nobody, '--', ...argv],
      plain: argv,
    };
    const out: Partial<Record<keyof typeof ways, Run & { packets: Packet[] }>> = {};
    for (const [way, full] of Object.entries(ways) as [keyof typeof ways, string[]][]) {
      const cap = await tb.capture(filter, on);
      const r = tb.inClient(full);
      out[way] = { ...r, packets: await cap.packets() };
    }
    return out as Record<keyof typeof ways, Run & { packets: Packet[] }>;
  }
}

export type Run = ReturnType<typeof sh>;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until cond() holds, every everyMs; fails naming what it waited for after a minute
 * (a bound for a broken test, not a measurement: a loaded machine only polls more often). */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, everyMs = 50, capMs = 60_000): Promise<void> {
  const until = Date.now() + capMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`waited ${capMs / 1000} s for ${what}`);
    await sleep(everyMs);
  }
}
