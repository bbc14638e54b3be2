/* `qos rsvp connections`: the TCP and UDP connections of a program, a process or with a peer
 * (rsvp/connections.ts; seed 001, "Semi-automatic specification of the TCP/UDP connection"),
 * for picking the 5-tuple of the session to reserve for: a table for people, --json for
 * programs. */

import type { Command } from 'commander';
import { QosError } from '../../errors.js';
import type { Connection } from '../../rsvp/connections.js';
import { columns } from '../../columns.js';
import { print } from '../format.js';
import { positiveInt } from '../options.js';

const endpoint = (a: string | null, port: number | null) => (a === null ? '*' : `${a.includes(':') ? `[${a}]` : a}:${port}`);

/** The table people read: one line per socket. */
export function formatConnections(list: Connection[]): string {
  const rows = list.map((c) => [c.program, String(c.pid), c.proto, endpoint(c.local, c.lport), endpoint(c.remote, c.rport), c.state, c.rttS === null ? '-' : `${+(c.rttS * 1e3).toPrecision(3)}ms`]);
  return columns([['PROGRAM', 'PID', 'PROTO', 'LOCAL', 'REMOTE', 'STATE', 'RTT'], ...rows]).join('\n');
}

interface Flags { pid?: number; program?: string; peer?: string; proto?: string; json?: boolean }

/** Registers `qos rsvp connections` in the rsvp group. */
export function addRsvpConnections(rsvp: Command): void {
  rsvp
    .command('connections')
    .description('list the TCP and UDP connections (IPv4 and IPv6) of a process (--pid), of every process of a program (--program: its command or executable name), or with a remote peer (--peer); given together, all must hold. What it is for: picking the 5-tuple of the session to reserve for an application that knows nothing of RSVP, for `qos rsvp open` (or `send`/`reserve`): its protocol, the destination address and port (the remote end, seen from the sender) and the sender\'s port. Read from /proc (each process\'s own network namespace); the round-trip time of TCP connections from ss, run in the process\'s namespace (another namespace than this one\'s needs root). Processes you may not read (other users\', without root) are left out. Exit 0 with a message when nothing matches.')
    .option('--pid <n>', 'a process id', (v) => positiveInt(v, '--pid'))
    .option('--program <name>', 'a program: its command name (as ps shows it) or its executable\'s base name')
    .option('--peer <address>', 'the remote address, IPv4 or IPv6')
    .option('--proto <tcp|udp>', 'only this protocol')
    .option('--json', 'print a JSON array: {proto, local, lport, remote, rport, state, pid, program, inode, rttS} (remote and rport null when unconnected; rttS seconds, null when not known)')
    .action(async (o: Flags) => {
      if (o.pid === undefined && o.program === undefined && o.peer === undefined) throw new QosError('QOS_ERR_USAGE', 'qos rsvp connections needs --pid, --program or --peer (or more than one)');
      if (o.proto !== undefined && o.proto !== 'tcp' && o.proto !== 'udp') throw new QosError('QOS_ERR_USAGE', `--proto is tcp or udp, not "${o.proto}"`);
      const { connections } = await import('../../rsvp/connections.js');
      const list = await connections({
        ...(o.pid !== undefined ? { pid: o.pid } : {}), ...(o.program !== undefined ? { program: o.program } : {}),
        ...(o.peer !== undefined ? { peer: o.peer } : {}), ...(o.proto ? { proto: o.proto as 'tcp' | 'udp' } : {}),
      });
      if (o.json) print(JSON.stringify(list, null, 2));
      else if (list.length) print(formatConnections(list));
      if (list.length) return;
      const asked = [o.pid !== undefined && `process ${o.pid}`, o.program !== undefined && `program ${o.program}`, o.peer !== undefined && `peer ${o.peer}`].filter(Boolean).join(', ');
      const why = process.getuid?.() === 0 ? '' : ' (other users\' processes are seen by root only)';
      const msg = `no ${o.proto ?? 'TCP or UDP'} connections for ${asked}${why}`;
      if (o.json) process.stderr.write(msg + '\n'); // stdout stays the empty array
      else print(msg);
    });
}
