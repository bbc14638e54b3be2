/* Two network namespaces joined by a veth pair, for the benchmarks that measure the kernel's
 * path (`qos bench rules`, `qos bench tc`): a client (where the daemon runs) and a server
 * (iperf3 -s, captures). Named PREFIX<pid>-c/-s, so removeStale(PREFIX) finds those of a
 * killed run; destroy() removes them and what still runs in them. */

import { must, removeNamespace } from '../demo/net.js';
import { QosError } from '../errors.js';
import { inNetns, run, runSync } from '../exec.js';

export class NamespacePair {
  readonly tag: string;
  readonly client: string;
  readonly server: string;
  /** the client's side of the veth pair */
  readonly clientDev = 'br0';
  readonly serverDev = 'br1';
  readonly clientIp = '10.250.0.1';
  readonly serverIp = '10.250.0.2';
  private made: string[] = [];

  constructor(prefix: string) {
    this.tag = `${prefix}${process.pid}`;
    this.client = `${this.tag}-c`;
    this.server = `${this.tag}-s`;
    try {
      for (const ns of [this.client, this.server]) { must(['ip', 'netns', 'add', ns]); this.made.push(ns); must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']); }
      must(['ip', 'link', 'add', this.clientDev, 'netns', this.client, 'type', 'veth', 'peer', 'name', this.serverDev, 'netns', this.server]);
      must(['ip', '-n', this.client, 'addr', 'add', `${this.clientIp}/24`, 'dev', this.clientDev]);
      must(['ip', '-n', this.server, 'addr', 'add', `${this.serverIp}/24`, 'dev', this.serverDev]);
      must(['ip', '-n', this.client, 'link', 'set', this.clientDev, 'up']);
      must(['ip', '-n', this.server, 'link', 'set', this.serverDev, 'up']);
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  /** Another veth pair between the same two namespaces, on subnet 10.250.n.0/24 (n from 1):
   * the benchmarks compare links side by side, alternating between them in one sitting. */
  addLink(n: number, clientDev: string, serverDev: string): { clientDev: string; serverDev: string; clientIp: string; serverIp: string } {
    if (!(Number.isInteger(n) && n >= 1 && n <= 254)) throw new QosError('QOS_ERR_USAGE', `no link number ${n}`);
    const l = { clientDev, serverDev, clientIp: `10.250.${n}.1`, serverIp: `10.250.${n}.2` };
    must(['ip', 'link', 'add', clientDev, 'netns', this.client, 'type', 'veth', 'peer', 'name', serverDev, 'netns', this.server]);
    must(['ip', '-n', this.client, 'addr', 'add', `${l.clientIp}/24`, 'dev', clientDev]);
    must(['ip', '-n', this.server, 'addr', 'add', `${l.serverIp}/24`, 'dev', serverDev]);
    must(['ip', '-n', this.client, 'link', 'set', clientDev, 'up']);
    must(['ip', '-n', this.server, 'link', 'set', serverDev, 'up']);
    return l;
  }

  destroy(): void {
    for (const ns of this.made.splice(0).reverse()) removeNamespace(ns);
  }
}

/** One iperf3 TCP run from the client namespace to an `iperf3 -s` on port (at the server's
 * address on the first link unless another is given): bits per second received. */
export function iperf(pair: NamespacePair, port: number, seconds: number, serverIp = pair.serverIp): number {
  // a failed run says why in its JSON
  return iperfResult(runSync(iperfArgv(pair, port, seconds, serverIp), { timeoutMs: (seconds + 20) * 1000, ok: 'any' }));
}

/** The same, not waiting: several run at once (`qos bench tc` compares links side by side).
 * inClient: how the client is started in its namespace (default `ip netns exec`; `qos bench
 * ebpf` joins a cgroup first, BenchCgroup.run). */
export async function iperfAsync(pair: NamespacePair, port: number, seconds: number, serverIp: string, inClient?: (argv: string[]) => string[]): Promise<number> {
  return iperfResult(await run(iperfArgv(pair, port, seconds, serverIp, inClient), { timeoutMs: (seconds + 20) * 1000, ok: 'any' }));
}

const iperfArgv = (pair: NamespacePair, port: number, seconds: number, serverIp: string, inClient = (argv: string[]) => inNetns(pair.client, argv)) =>
  inClient(['iperf3', '-c', serverIp, '-p', String(port), '-t', String(seconds), '-J']);

function iperfResult(r: { stdout: string; stderr: string }): number {
  let j: { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
  try { j = JSON.parse(r.stdout) as typeof j; } catch { throw new QosError('QOS_ERR_ENVIRONMENT', `iperf3 failed: ${(r.stderr || r.stdout).trim().slice(0, 300)}`); }
  const bps = j.end?.sum_received?.bits_per_second;
  if (!bps) throw new QosError('QOS_ERR_ENVIRONMENT', `iperf3 failed: ${j.error ?? 'no result'}`);
  return bps;
}
