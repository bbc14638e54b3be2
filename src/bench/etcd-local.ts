/* A throw-away etcd cluster on loopback for `qos bench fleet`: 1 or 3 members (any count), each
 * on free ports of 127.0.0.1 with its data in one temporary directory, ready once every member
 * says it is healthy; stop() ends them and removes the directory. Plain HTTP: what is measured is
 * etcd's own work and bytes, not TLS's. */

import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QosError } from '../errors.js';
import { runSync, start, type Child } from '../exec.js';
import { requireTools } from '../prerequisites.js';

/** Free TCP ports of 127.0.0.1, all held at once while chosen so none is given twice. */
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
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

export class LocalEtcd {
  /** each member's client URL, http://127.0.0.1:PORT */
  readonly clientUrls: string[] = [];
  private readonly members: Child[] = [];
  private dir: string | null = null;

  /** `etcd://127.0.0.1:P1,...`, as `qos daemon --fleet` takes it */
  get fleetUrl(): string {
    return `etcd://${this.clientUrls.map((u) => u.slice('http://'.length)).join(',')}`;
  }

  /** etcd's version, as `etcd --version` prints it */
  static version(): string {
    requireTools('etcd');
    return /etcd Version:\s*(\S+)/.exec(runSync(['etcd', '--version'], { pkg: 'etcd-server' }).stdout)?.[1] ?? 'unknown';
  }

  /** Starts `count` members and waits (up to timeoutMs) until each reports itself healthy;
   * on failure stops what it started and says which member failed and what it printed. `nice`:
   * the members' scheduling priority (coreutils nice; every thread of theirs has it). */
  async start(count: number, o: { timeoutMs?: number; nice?: number } = {}): Promise<this> {
    const timeoutMs = o.timeoutMs ?? 30_000;
    requireTools('etcd');
    const ports = await freePorts(2 * count);
    const dir = this.dir = mkdtempSync(join(tmpdir(), 'qosd-etcd-'));
    const peer = (i: number) => `http://127.0.0.1:${ports[2 * i + 1]!}`;
    const cluster = Array.from({ length: count }, (_, i) => `m${i}=${peer(i)}`).join(',');
    try {
      for (let i = 0; i < count; i++) {
        const client = `http://127.0.0.1:${ports[2 * i]!}`;
        this.clientUrls.push(client);
        this.members.push(start([...(o.nice === undefined ? [] : ['nice', '-n', String(o.nice)]), 'etcd', '--name', `m${i}`, '--data-dir', join(dir, `m${i}`),
          '--listen-client-urls', client, '--advertise-client-urls', client,
          '--listen-peer-urls', peer(i), '--initial-advertise-peer-urls', peer(i),
          '--initial-cluster', cluster, '--initial-cluster-state', 'new', '--initial-cluster-token', `qosd-bench-${process.pid}-${ports[0]!}`],
        // etcd logs on stderr (its last 64 KiB kept for errors); stdout is not read, so not piped
        { name: `etcd member m${i}`, pkg: 'etcd-server', code: 'QOS_ERR_BENCH', stdio: ['ignore', 'ignore', 'pipe'] }));
      }
      await this.healthy(timeoutMs);
      return this;
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  private async healthy(timeoutMs: number): Promise<void> {
    const end = Date.now() + timeoutMs;
    const ok = new Set<number>();
    while (ok.size < this.members.length) {
      for (const [i, m] of this.members.entries()) {
        if (ok.has(i)) continue;
        if (!m.running) throw m.failure(await m.exited);
        try {
          const r = await fetch(`${this.clientUrls[i]!}/health`, { signal: AbortSignal.timeout(2000) });
          if (((await r.json()) as { health?: string }).health === 'true') ok.add(i);
        } catch { /* not listening or no leader yet */ }
      }
      if (ok.size === this.members.length) break;
      if (Date.now() > end) {
        const bad = this.members.map((_, i) => i).filter((i) => !ok.has(i));
        throw new QosError('QOS_ERR_BENCH', `etcd member(s) ${bad.map((i) => `m${i}`).join(', ')} not healthy within ${timeoutMs} ms: ${this.members[bad[0]!]!.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Each member's Prometheus text (its /metrics), in member order. */
  async metrics(): Promise<string[]> {
    return Promise.all(this.clientUrls.map(async (u) => {
      const r = await fetch(`${u}/metrics`, { signal: AbortSignal.timeout(10_000) });
      if (!r.ok) throw new QosError('QOS_ERR_BENCH', `${u}/metrics answered ${r.status}`);
      return r.text();
    }));
  }

  /** Ends every member (SIGTERM, SIGKILL after 10 s) and removes their data. */
  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop('SIGTERM', 10_000)));
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
  }
}
