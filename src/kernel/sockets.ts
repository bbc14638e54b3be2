/* What the kernel holds on a process's inet sockets now (`qos explain --pid`): each socket's
 * ends, its TOS (IP_TOS, or the traffic class on IPv6) and priority, read back by sock_diag
 * through `ss --tos` in the process's own network namespace: the mark the kernel has, whoever
 * set it (the application, the agent, the eBPF programs). */

import { isIP } from 'node:net';
import { run } from '../exec.js';

export interface KernelSocket {
  proto: 'tcp' | 'udp';
  state: string;
  fd: number;
  local: string;
  remote: string;
  /** the whole TOS byte (DSCP << 2 | ECN) */
  tos: number;
  /** the socket's priority (SO_PRIORITY; ss's class_id) */
  priority: number;
}

/** The sockets of pid in `ss -H -tuanp --tos` output. */
export function parseSs(text: string, pid: number): KernelSocket[] {
  const out: KernelSocket[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || (f[0] !== 'tcp' && f[0] !== 'udp')) continue;
    const fds = [...line.matchAll(/pid=(\d+),fd=(\d+)/g)].filter((m) => Number(m[1]) === pid).map((m) => Number(m[2]));
    if (!fds.length) continue;
    const tos = /\btos:(0x[0-9a-f]+|\d+)/.exec(line)?.[1];
    const cls = /\bclass_id:(0x[0-9a-f]+|\d+)/.exec(line)?.[1];
    for (const fd of fds) {
      out.push({ proto: f[0], state: f[1]!, fd, local: f[4]!, remote: f[5]!, tos: tos ? Number(tos) : 0, priority: cls ? Number(cls) : 0 });
    }
  }
  return out.sort((a, b) => a.fd - b.fd);
}

/** One end as ss prints it ("10.0.0.1:80", "[2001:db8::1]:443", "127.0.0.53%lo:53",
 * "[::ffff:10.0.0.1]:80"), the address as the packets carry it (a v4-mapped one dotted); null
 * for an end with no port yet ("0.0.0.0:*", "*:*"). */
export function endOf(text: string): { address: string; port: number } | null {
  const m = /^\[?([^\]]*?)(?:%[^\]:]+)?\]?:(\d+)$/.exec(text);
  if (!m || m[1] === '*') return null;
  const address = m[1]!.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  return isIP(address) ? { address, port: Number(m[2]) } : null;
}

/** The inet sockets of process pid as the kernel has them now, read in its network namespace. */
export async function socketsOf(pid: number): Promise<KernelSocket[]> {
  const r = await run(['nsenter', `--net=/proc/${pid}/ns/net`, 'ss', '-H', '-tuanp', '--tos'], { pkg: 'util-linux (nsenter), iproute2 (ss)', timeoutMs: 20_000 });
  return parseSs(r.stdout, pid);
}
