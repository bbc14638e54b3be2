/* `qos rsvp cheat`: sender TCP cheating for one connection on this router, an experiment
 * (docs/tcp-cheating.md; seed 001, "The TCP Cheating mechanism"). It runs until SIGTERM or
 * SIGINT, then prints what it did. Off unless run: nothing else in qosd starts it. */

import { Command } from 'commander';
import { QosError } from '../../errors.js';
import { parseSize } from '../../units.js';
import { print } from '../format.js';
import { wholeNumber } from '../options.js';

/** Registers `qos rsvp cheat` under `qos rsvp`. */
export function addRsvpCheat(rsvp: Command): void {
  rsvp
    .command('cheat')
    .description('EXPERIMENT, breaks TCP\'s end-to-end reliability: "sender TCP cheating" (seed 001) for one TCP connection, run on the QoS network\'s ingress router. '
      + 'Every data segment the sender sends through --dev is answered at once with a fake ACK from the receiver\'s address (ack = the highest in-order byte seen here, window = --window), '
      + 'and the receiver\'s real ACKs are dropped here (an nftables table of its own, removed at exit), so the sender no longer slows down for a congested reverse path. '
      + 'Data lost after this router is acknowledged all the same and NEVER retransmitted: never use it for file transfers. IPv4, one-way transfers only; '
      + 'needs root (CAP_NET_RAW and nftables). Runs until SIGTERM or SIGINT, then prints its counts (segments seen, fake ACKs sent, real ACKs dropped). docs/tcp-cheating.md')
    .requiredOption('--dev <interface>', 'this router\'s interface toward the sender')
    .requiredOption('--sender <address:port>', 'the TCP sender, A.B.C.D:PORT (its data is what is acknowledged)')
    .requiredOption('--receiver <address:port>', 'the TCP receiver, A.B.C.D:PORT (the fake ACKs come from it)')
    .requiredOption('--window <bytes>', 'W_R, the receive window the fake ACKs announce: PRTT x p (the partial round trip time from here to the sender, times the sender\'s peak rate) or more; 64KiB, 200000')
    .option('--wscale <n>', 'the receiver\'s window scale (RFC 7323), needed only when the cheat starts after the connection\'s SYN and SYN-ACK (it reads it from them otherwise)', (v) => wholeNumber(v, '--wscale'))
    .option('--json', 'print JSON lines: {"kind":"ready",...} once running, {"kind":"stopped",...counts} at the end')
    .action(async (o: { dev: string; sender: string; receiver: string; window: string; wscale?: number; json?: boolean }) => {
      if (process.getuid?.() !== 0) throw new QosError('QOS_ERR_PRIVILEGE', 'qos rsvp cheat needs root: raw and packet sockets (CAP_NET_RAW) and an nftables table (CAP_NET_ADMIN)');
      const { parseEndpoint } = await import('../../tcp-cheat/table.js');
      const sender = parseEndpoint(o.sender, '--sender');
      const receiver = parseEndpoint(o.receiver, '--receiver');
      const window = parseSize(o.window);
      if (!Number.isInteger(window) || window < 1 || window > 65535 * 2 ** 14) throw new QosError('QOS_ERR_USAGE', `--window takes 1 byte to 1 GiB (65535 << 14), not "${o.window}"`);
      if (o.wscale !== undefined && o.wscale > 14) throw new QosError('QOS_ERR_USAGE', `--wscale is at most 14 (RFC 7323 section 2.3), not ${o.wscale}`);
      // a signal while it starts stops it as soon as it has started
      const signalled = new Promise<null>((resolve) => { process.once('SIGTERM', () => resolve(null)); process.once('SIGINT', () => resolve(null)); });
      const { Cheat } = await import('../../tcp-cheat/cheat.js');
      const cheat = await Cheat.start({ dev: o.dev, sender, receiver, window, ...(o.wscale === undefined ? {} : { wscale: o.wscale }) });
      print(o.json ? JSON.stringify({ kind: 'ready', pid: process.pid, table: cheat.table })
        : `cheating for ${o.sender} -> ${o.receiver} on ${o.dev} (nftables table inet ${cheat.table}); SIGTERM or SIGINT stops it`);
      const failed = await Promise.race([signalled, cheat.ended]);
      const counts = await cheat.stop().catch((e: unknown) => { throw failed ?? e; });
      if (failed) throw failed;
      print(o.json ? JSON.stringify({ kind: 'stopped', ...counts })
        : `segments seen ${counts.segments}, fake ACKs sent ${counts.fakeAcks}, real ACKs dropped ${counts.realAcksDropped}`
          + ` (ACKable ${counts.ackable}, before the connection's start ${counts.beforeStart}, send errors ${counts.sendErrors}, in-order bytes ${counts.inOrderBytes}, window scale ${counts.wscale}, timestamps ${counts.timestamps ? 'yes' : 'no'})`);
    });
}
