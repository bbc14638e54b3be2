/* Sender TCP cheating on this router for one connection (docs/tcp-cheating.md; seed 001, "The
 * TCP Cheating mechanism"): the table that drops the receiver's real ACKs (table.ts) and
 * native/tcpcheat, which answers the sender's data with fake ACKs. start() removes what a
 * killed predecessor for the same connection left, installs the table, starts the helper;
 * stop() stops the helper, reads its counts and the table's, and removes the table. */

import { existsSync } from 'node:fs';
import { QosError } from '../errors.js';
import { run, start, type Child } from '../exec.js';
import { TCPCHEAT_PROGRAM } from '../paths.js';
import { droppedCount, planTable, tableName, type Connection } from './table.js';

export interface CheatOptions extends Connection {
  /** the router's interface toward the sender */
  dev: string;
  /** W_R, the receive window the fake ACKs announce, bytes */
  window: number;
  /** the receiver's window scale, when the cheat starts after the connection's handshake */
  wscale?: number;
  /** run in this network namespace (tests, the benchmark) */
  netns?: string;
}

/** What a cheat did, reported when it stops. */
export interface CheatCounts {
  /** the sender's segments with data the helper saw */
  segments: number;
  /** of those, the ACKable ones: each got a fake ACK */
  ackable: number;
  /** data segments seen before the connection's start was known (not answered) */
  beforeStart: number;
  fakeAcks: number;
  sendErrors: number;
  /** the in-order bytes the fake ACKs acknowledged */
  inOrderBytes: number;
  /** the window scale used (-1: never learned) and whether the connection uses timestamps */
  wscale: number;
  timestamps: boolean;
  /** the receiver's packets dropped at the router (its real ACKs) */
  realAcksDropped: number;
}

const READY_MS = 10_000;

export class Cheat {
  private stopped: Promise<CheatCounts> | null = null;

  private constructor(readonly table: string, private readonly helper: Child, private readonly o: CheatOptions) {}

  /** Installs the table and starts the helper; resolves once the helper's sockets are open. */
  static async start(o: CheatOptions): Promise<Cheat> {
    if (!existsSync(TCPCHEAT_PROGRAM)) throw new QosError('QOS_ERR_ENVIRONMENT', `${TCPCHEAT_PROGRAM} is not built: run \`make -C native\` (needs the Debian package gcc)`);
    const link = await run(['ip', 'link', 'show', 'dev', o.dev], { netns: o.netns, ok: 'any', pkg: 'iproute2', timeoutMs: 30_000 });
    if (link.code !== 0) throw new QosError('QOS_ERR_USAGE', `--dev: no interface "${o.dev}" here`);
    const table = tableName(o);
    await removeTable(table, o.netns);
    // the document as an argument: nft cannot open a pipe from Node (a socket) as /dev/stdin
    await nft(['-j', JSON.stringify(planTable(o, table))], o.netns, `nft -j (the table ${table})`);
    const argv = [TCPCHEAT_PROGRAM, '--dev', o.dev, '--sender', `${o.sender.addr}:${o.sender.port}`, '--receiver', `${o.receiver.addr}:${o.receiver.port}`,
      '--window', String(o.window), ...(o.wscale === undefined ? [] : ['--wscale', String(o.wscale)])];
    const helper = start(argv, { netns: o.netns, name: 'tcpcheat', keepStdout: true });
    try {
      await helper.until('ready', READY_MS, 'stdout');
    } catch (e) {
      helper.kill();
      await removeTable(table, o.netns);
      throw e;
    }
    return new Cheat(table, helper, o);
  }

  /** Whether the helper still runs (it ends only when stopped, or on an error it reports). */
  get running(): boolean {
    return this.helper.running;
  }

  /** Resolves when the helper ends by itself (an error): its failure. */
  get ended(): Promise<QosError> {
    return this.helper.exited.then((e) => this.helper.failure(e));
  }

  /** Stops the helper, reads the counts, removes the table (the table goes even if reading fails). */
  stop(): Promise<CheatCounts> {
    this.stopped ??= (async () => {
      try {
        const e = await this.helper.stop('SIGTERM', 5000);
        const line = this.helper.stdout.trim().split('\n').pop() ?? '';
        if (e.code !== 0 || !line.startsWith('{')) throw this.helper.failure(e);
        const counts = JSON.parse(line) as Omit<CheatCounts, 'realAcksDropped'>;
        const listing = await nft(['-j', 'list', 'table', 'inet', this.table], this.o.netns);
        return { ...counts, realAcksDropped: droppedCount(listing) };
      } finally {
        await removeTable(this.table, this.o.netns);
      }
    })();
    return this.stopped;
  }
}

async function nft(args: string[], netns: string | undefined, name?: string): Promise<string> {
  const r = await run(['nft', ...args], { netns, code: 'QOS_ERR_KERNEL', pkg: 'nftables', timeoutMs: 30_000, ...(name ? { name } : {}) });
  return r.stdout;
}

/** Deletes the table if it is there. */
async function removeTable(table: string, netns: string | undefined): Promise<void> {
  const r = await run(['nft', 'list', 'table', 'inet', table], { netns, ok: 'any', pkg: 'nftables', timeoutMs: 30_000 });
  if (r.code === 0) await nft(['delete', 'table', 'inet', table], netns);
}
