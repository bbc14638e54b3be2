/* A real etcd cluster for the fleet's tests and benchmark: 1 or 3 members of Debian's etcd on
 * 127.0.0.1, free ports, data in a private temporary directory, optionally TLS with client
 * certificates (tls-certs.ts). Members can be killed, stopped and restarted on the same data
 * and ports; a network namespace reaches the cluster through socat over Unix sockets (a file
 * belongs to no namespace), on the same 127.0.0.1 ports, so the endpoints and the server
 * certificate's IP are the same inside. close() removes everything it made. */

import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { run, runSync, start, type Child } from '../exec.js';
import { requireTools } from '../prerequisites.js';
import type { CertPair, Certs } from './tls-certs.js';
import { waitFor } from './harness.js';

/** What etcdctl printed and how it ended. */
export interface EtcdctlResult { status: number | null; stdout: string; stderr: string }

export interface EtcdctlOptions {
  /** whose client certificate (TLS): a name of the Certs' clients, a pair of files, or null for
   * none (default: the cluster's client, see start()) */
  as?: string | CertPair | null;
  /** endpoints to use instead of all members' (e.g. one member's: endpoint(i)) */
  endpoints?: string;
  /** run inside this network namespace (after reachableFrom(ns)) */
  netns?: string;
  /** etcdctl's standard input (`user add --interactive=false` reads a password there) */
  input?: string;
}

export interface ClusterOptions {
  members: 1 | 3;
  /** serve clients over TLS with these certificates, requiring a client certificate */
  tls?: Certs;
  /** the client certificate etcdctl() and the health checks use by default (a name of
   * tls.clients; default: root if there is one, else the first) */
  client?: string;
  /** where the cluster's private temporary directory is made (default: the system's) */
  dir?: string;
  /** the members' scheduling priority (coreutils nice; every thread of theirs has it):
   * `qos bench fleet` puts etcd above the daemons it measures */
  nice?: number;
}

interface Member { name: string; clientPort: number; peerPort: number; dataDir: string; child: Child | null }

/** Raft timing for tests, a half of etcd's defaults (100 ms, 1000 ms): an election after a
 * leader is killed takes about half as long. Stable here (2 loaded cores): the members are on
 * loopback, where a round trip is microseconds; what a loaded machine delays is the processes. */
const HEARTBEAT_MS = '50';
const ELECTION_MS = '500';
/** tries of a start on new ports, when another program took one between our pick and etcd's bind */
const START_TRIES = 3;
/** a bound for waits on a broken cluster, not a measurement (the machine is shared and loaded) */
const CAP_MS = 60_000;

const live = new Set<EtcdCluster>();
let exitHook = false;

/** Ports free now on 127.0.0.1, distinct: each bound at once to port 0, then all closed. */
async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => { s.once('error', reject); s.listen(0, '127.0.0.1', resolve); });
    }
    return servers.map((s) => (s.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/** The last lines of a text, indented, for an error. */
function tail(text: string, n = 15): string {
  return text.trim().split('\n').slice(-n).map((l) => `    ${l}`).join('\n');
}

export class EtcdCluster {
  private closed = false;
  /** per namespace: its socat processes (inside and here) */
  private bridges = new Map<string, Child[]>();
  private readonly scheme: 'http' | 'https';

  private constructor(readonly dir: string, private readonly members: Member[], readonly tls: Certs | undefined, private readonly client: string | undefined,
    /** --initial-cluster-token: no member of another cluster joins this one */
    private readonly token: string, private readonly nice?: number) {
    this.scheme = tls ? 'https' : 'http';
  }

  /** Starts the members and waits until every one is healthy (etcdctl endpoint health). */
  static async start(o: ClusterOptions): Promise<EtcdCluster> {
    requireTools('etcd', 'etcdctl');
    const clients = Object.keys(o.tls?.clients ?? {});
    const client = o.client ?? (clients.includes('root') ? 'root' : clients[0]);
    if (o.tls && (client === undefined || !o.tls.clients[client])) throw new Error('EtcdCluster: with TLS etcd requires a client certificate: give Certs with at least one client (and `client` one of them)');
    if (o.dir) mkdirSync(o.dir, { recursive: true });
    const dir = mkdtempSync(join(o.dir ?? tmpdir(), 'qosd-etcd-'));
    for (let attempt = 1; ; attempt++) {
      const ports = await freePorts(2 * o.members);
      const members = Array.from({ length: o.members }, (_, i): Member => ({
        name: `m${i}`, clientPort: ports[2 * i]!, peerPort: ports[2 * i + 1]!, dataDir: join(dir, `try${attempt}-m${i}`), child: null,
      }));
      const c = new EtcdCluster(dir, members, o.tls, client, `qosd-test-${randomBytes(6).toString('hex')}`, o.nice);
      live.add(c);
      if (!exitHook) {
        exitHook = true;
        // a test process that dies leaves no etcd behind (close() is the normal way)
        process.once('exit', () => { for (const x of live) for (const m of x.members) m.child?.kill(); });
      }
      try {
        for (const m of members) c.spawn(m);
        await c.waitHealthy(members.map((_, i) => i));
        return c;
      } catch (e) {
        const clash = members.some((m) => /address already in use/.test(m.child?.stderr ?? ''));
        for (const m of members) m.child?.kill();
        await Promise.all(members.map((m) => m.child?.exited));
        live.delete(c);
        if (!clash || attempt >= START_TRIES) {
          rmSync(dir, { recursive: true, force: true });
          throw e;
        }
      }
    }
  }

  /** "127.0.0.1:P1,127.0.0.1:P2,..." */
  get endpoints(): string {
    return this.members.map((_, i) => this.endpoint(i)).join(',');
  }

  /** qosd's --fleet value: "etcd://" + endpoints (TLS is --fleet-ca's business). */
  get url(): string {
    return `etcd://${this.endpoints}`;
  }

  /** etcd's version, as `etcd --version` prints it */
  static version(): string {
    requireTools('etcd');
    return /etcd Version:\s*(\S+)/.exec(runSync(['etcd', '--version'], { pkg: 'etcd-server' }).stdout)?.[1] ?? 'unknown';
  }

  /** Each member's Prometheus text (its /metrics), in member order (without TLS). */
  async metrics(): Promise<string[]> {
    return Promise.all(this.members.map(async (m) => {
      const u = `${this.scheme}://127.0.0.1:${m.clientPort}/metrics`;
      const r = await fetch(u, { signal: AbortSignal.timeout(10_000) });
      if (!r.ok) throw new Error(`${u} answered ${r.status}`);
      return r.text();
    }));
  }

  /** Member i's client endpoint, "127.0.0.1:P". */
  endpoint(i: number): string {
    return `127.0.0.1:${this.member(i).clientPort}`;
  }

  get size(): number {
    return this.members.length;
  }

  /** The index of the member that is the leader now, as the running members report it
   * (etcdctl endpoint status); waits while there is none (an election under way). */
  async leader(): Promise<number> {
    let found = -1;
    const up = this.members.flatMap((m, i) => (m.child?.running ? [i] : []));
    await waitFor('an etcd leader', async () => {
      const r = await this.etcdctl(['endpoint', 'status', '-w', 'json'], { endpoints: up.map((i) => this.endpoint(i)).join(',') });
      if (r.status !== 0) return false;
      // the ids are 64-bit: kept as the digits etcdctl printed, never as JavaScript numbers
      const status = JSON.parse(r.stdout.replace(/"(member_id|leader)":(\d+)/g, '"$1":"$2"')) as { Endpoint: string; Status: { header: { member_id: string }; leader: string } }[];
      const leader = status[0]?.Status.leader;
      if (!leader || leader === '0' || status.some((x) => x.Status.leader !== leader)) return false;
      const at = status.find((x) => x.Status.header.member_id === leader)?.Endpoint;
      found = up.find((i) => this.endpoint(i) === at) ?? -1;
      return found >= 0;
    }, 100, CAP_MS);
    return found;
  }

  /** Whether member i's process is running. */
  running(i: number): boolean {
    return this.member(i).child?.running ?? false;
  }

  /** The client certificate files of a client of the TLS certificates. */
  clientCert(name: string): CertPair {
    const pair = this.tls?.clients[name];
    if (!pair) throw new Error(`EtcdCluster: no client certificate "${name}"${this.tls ? ` (there are: ${Object.keys(this.tls.clients).join(', ')})` : ' (no TLS)'}`);
    return pair;
  }

  /** The etcdctl flags that reach the cluster as a client (TLS: the CA and, unless as is null,
   * a client certificate). */
  etcdctlFlags(o: Pick<EtcdctlOptions, 'as' | 'endpoints'> = {}): string[] {
    const flags = ['--endpoints', o.endpoints ?? this.endpoints, '--dial-timeout', '5s', '--command-timeout', '20s'];
    if (!this.tls) return flags;
    flags.push('--cacert', this.tls.ca);
    const as = o.as === undefined ? this.client! : o.as;
    if (as !== null) {
      const pair = typeof as === 'string' ? this.clientCert(as) : as;
      flags.push('--cert', pair.cert, '--key', pair.key);
    }
    return flags;
  }

  /** Runs etcdctl (v3) against the cluster; whatever its exit status, resolves with it. A flag
   * in args overrides the same one of etcdctlFlags() (e.g. a shorter --command-timeout when
   * nothing is meant to answer). */
  async etcdctl(args: string[], o: EtcdctlOptions = {}): Promise<EtcdctlResult> {
    const r = await run(['etcdctl', ...this.etcdctlFlags(o), ...args], {
      netns: o.netns, input: o.input, ok: 'any', timeoutMs: CAP_MS, pkg: 'etcd-client', env: { ...process.env, ETCDCTL_API: '3' },
    });
    return { status: r.code, stdout: r.stdout, stderr: r.stderr };
  }

  /** SIGKILL member i and wait until it is gone. */
  async kill(i: number): Promise<void> {
    const m = this.member(i);
    m.child?.kill();
    await m.child?.exited;
  }

  /** SIGTERM member i and wait until it has stopped. */
  async stop(i: number): Promise<void> {
    await this.member(i).child?.stop('SIGTERM', CAP_MS);
  }

  /** Starts member i again on its data and ports, and waits until it is healthy (unless
   * wait is false: a member of a 3-member cluster started alone never is). */
  async restart(i: number, o: { wait?: boolean } = {}): Promise<void> {
    const m = this.member(i);
    if (m.child?.running) throw new Error(`EtcdCluster: member ${m.name} is running: kill() or stop() it first`);
    this.spawn(m);
    if (o.wait !== false) await this.waitHealthy([i]);
  }

  /** SIGTERM every member, one after the other, and wait until all have stopped (all at once,
   * a leader stopping tries to hand over to a member stopping too, and waits seconds for it). */
  async stopAll(): Promise<void> {
    for (let i = 0; i < this.members.length; i++) await this.stop(i);
  }

  /** Starts every member that is not running, then waits until all are healthy (a member of a
   * 3-member cluster alone is never healthy: it needs a quorum). */
  async startAll(): Promise<void> {
    for (const m of this.members) if (!m.child?.running) this.spawn(m);
    await this.waitHealthy(this.members.map((_, i) => i));
  }

  /** Makes the cluster reachable from network namespace ns at the same endpoints (127.0.0.1
   * and the members' ports, inside ns): per member, socat inside ns listens on the port and
   * joins each connection to a Unix socket in the cluster's directory, where socat here joins
   * it to the member. TLS passes through unchanged. Brings ns's loopback up. Returns the
   * endpoints to use inside ns. */
  async reachableFrom(ns: string): Promise<string> {
    if (this.closed) throw new Error('EtcdCluster: closed');
    if (this.bridges.has(ns)) return this.endpoints;
    requireTools('socat', 'ip', 'ss');
    const procs: Child[] = [];
    this.bridges.set(ns, procs);
    runSync(['ip', '-n', ns, 'link', 'set', 'lo', 'up'], { timeoutMs: CAP_MS });
    const tag = this.bridges.size;
    for (const [i, m] of this.members.entries()) {
      const sock = join(this.dir, `ns${tag}-m${i}.sock`);
      const here = start(['socat', `UNIX-LISTEN:${sock},fork,unlink-early,mode=600`, `TCP4:127.0.0.1:${m.clientPort}`], { name: `socat (etcd ${m.name} for ${ns})`, pkg: 'socat' });
      procs.push(here);
      await waitFor(`socat listening on ${sock}`, () => existsSync(sock) || !here.running, 50, CAP_MS);
      if (!here.running) throw here.failure(await here.exited);
      const inside = start(['socat', `TCP4-LISTEN:${m.clientPort},bind=127.0.0.1,fork,reuseaddr`, `UNIX-CONNECT:${sock}`], { netns: ns, name: `socat (in ${ns} for etcd ${m.name})`, pkg: 'socat' });
      procs.push(inside);
      await waitFor(`socat listening on 127.0.0.1:${m.clientPort} in ${ns}`, async () => {
        if (!inside.running) return true;
        const r = await run(['ss', '-Hltn', `sport = :${m.clientPort}`], { netns: ns, ok: 'any', timeoutMs: CAP_MS });
        return r.stdout.trim() !== '';
      }, 50, CAP_MS);
      if (!inside.running) throw inside.failure(await inside.exited);
    }
    return this.endpoints;
  }

  /** Kills every member and bridge and removes the directory; again, does nothing. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const all = [...this.members.map((m) => m.child), ...[...this.bridges.values()].flat()].filter((c): c is Child => c !== null);
    for (const c of all) c.kill();
    await Promise.all(all.map((c) => c.exited));
    this.bridges.clear();
    live.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Waits until each of these members answers `endpoint health`; throws with the members'
   * output if one has exited or CAP_MS passed. */
  async waitHealthy(indices: number[]): Promise<void> {
    const endpoints = indices.map((i) => this.endpoint(i)).join(',');
    let last: EtcdctlResult | undefined;
    try {
      await waitFor(`etcd members ${indices.map((i) => this.member(i).name).join(', ')} healthy`, async () => {
        const gone = indices.map((i) => this.member(i)).find((m) => !m.child?.running);
        if (gone) throw new Error(`etcd member ${gone.name} exited`);
        last = await this.etcdctl(['endpoint', 'health'], { endpoints });
        return last.status === 0;
      }, 200, CAP_MS);
    } catch (e) {
      const said = this.members.map((m) => `  ${m.name} (client ${m.clientPort}, peer ${m.peerPort}):\n${tail(m.child?.stderr ?? '(not started)')}`).join('\n');
      throw new Error(`${(e as Error).message}${last ? `; etcdctl endpoint health: ${(last.stdout + last.stderr).trim()}` : ''}\n${said}`, { cause: e });
    }
  }

  private member(i: number): Member {
    const m = this.members[i];
    if (!m) throw new Error(`EtcdCluster: no member ${i} (there are ${this.members.length})`);
    return m;
  }

  /** Starts member m's etcd; on a data directory that holds a member, etcd ignores the
   * initial-cluster flags and rejoins. */
  private spawn(m: Member): void {
    if (this.closed) throw new Error('EtcdCluster: closed');
    const client = `${this.scheme}://127.0.0.1:${m.clientPort}`;
    const peer = (x: Member) => `http://127.0.0.1:${x.peerPort}`;
    const argv = ['etcd', '--name', m.name, '--data-dir', m.dataDir,
      '--listen-client-urls', client, '--advertise-client-urls', client,
      '--listen-peer-urls', peer(m), '--initial-advertise-peer-urls', peer(m),
      '--initial-cluster', this.members.map((x) => `${x.name}=${peer(x)}`).join(','),
      '--initial-cluster-state', 'new', '--initial-cluster-token', this.token,
      '--heartbeat-interval', HEARTBEAT_MS, '--election-timeout', ELECTION_MS,
      '--logger', 'zap', '--log-outputs', 'stderr'];
    if (this.tls) argv.push('--cert-file', this.tls.server.cert, '--key-file', this.tls.server.key, '--trusted-ca-file', this.tls.ca, '--client-cert-auth');
    if (this.nice !== undefined) argv.unshift('nice', '-n', String(this.nice));
    m.child = start(argv, { name: `etcd ${m.name}`, pkg: 'etcd-server', stdio: ['ignore', 'ignore', 'pipe'] });
  }
}
