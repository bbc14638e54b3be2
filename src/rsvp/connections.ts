/* Connection discovery (seed 001, "Semi-automatic specification of the TCP/UDP connection"):
 * the TCP and UDP sockets of a program, of a process, or with a given peer, so that a user
 * picks the session's 5-tuple from a short list instead of typing it (`qos rsvp connections`).
 *
 * From the kernel: each process's descriptors (/proc/PID/fd, `socket:[INODE]`) joined by
 * inode with the socket tables of its own network namespace (/proc/PID/net/tcp, tcp6, udp,
 * udp6), and for TCP the smoothed round-trip time from `ss -tinHe` (rtt:SRTT/RTTVAR, keyed by
 * inode), run in each namespace that has connections: this one's directly, another's through
 * `nsenter --net=/proc/PID/ns/net` (root only; without it, no RTT there). A process that goes
 * away or whose descriptors we may not read (another user's, without root) is skipped. */

import { readdir, readFile, readlink } from 'node:fs/promises';
import { isIP } from 'node:net';
import { endianness } from 'node:os';
import { basename } from 'node:path';
import { QosError } from '../errors.js';
import { run } from '../exec.js';
import { formatIPv6, parseIPv6 } from './wire.js';

/** A socket as a table of /proc/PID/net lists it. remote and rport are null when it has no
 * peer (listening, unconnected UDP). IPv4-mapped IPv6 addresses are given as IPv4: that is
 * what goes on the wire. */
export interface ProcSocket {
  proto: 'tcp' | 'udp';
  local: string; lport: number;
  remote: string | null; rport: number | null;
  /** as ss names it: ESTAB, LISTEN, UNCONN, SYN-SENT, TIME-WAIT... */
  state: string;
  inode: number;
}

/** One socket of one process. */
export interface Connection extends ProcSocket {
  pid: number;
  /** the process's command name (/proc/PID/comm) */
  program: string;
  /** TCP: the smoothed round-trip time, seconds, when the kernel gives it (else null) */
  rttS: number | null;
}

export interface ConnectionQuery {
  pid?: number;
  /** a command name (comm) or executable's base name */
  program?: string;
  /** the remote address, IPv4 or IPv6 */
  peer?: string;
  proto?: 'tcp' | 'udp';
}

// include/net/tcp_states.h, named as ss names them; UDP uses 1 (connected) and 7 (not)
const STATES = ['', 'ESTAB', 'SYN-SENT', 'SYN-RECV', 'FIN-WAIT-1', 'FIN-WAIT-2', 'TIME-WAIT', 'UNCONN', 'CLOSE-WAIT', 'LAST-ACK', 'LISTEN', 'CLOSING', 'NEW-SYN-RECV'];

const LITTLE = endianness() === 'LE';

/** An address as the kernel prints it in /proc/net: the 4-byte words of the address in network
 * order, each printed as a host-order integer in hex (%08X). */
function procAddress(hex: string, little: boolean): string | null {
  if (hex.length !== 8 && hex.length !== 32) return null;
  const b = new Uint8Array(hex.length / 2);
  for (let w = 0; w < b.length; w += 4) {
    const word = Number.parseInt(hex.slice(2 * w, 2 * w + 8), 16);
    if (Number.isNaN(word)) return null;
    for (let i = 0; i < 4; i++) b[w + i] = (word >>> (little ? 8 * i : 24 - 8 * i)) & 0xff;
  }
  if (b.length === 4) return b.join('.');
  const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  return mapped ? b.subarray(12).join('.') : formatIPv6(b);
}

const ANY = new Set(['0.0.0.0', '::']);

/** The sockets of one /proc/net/{tcp,tcp6,udp,udp6} table (its header line skipped); little:
 * the byte order of the machine that wrote it (this one's by default). Sockets with inode 0
 * (TIME-WAIT, owned by no descriptor) are left out. */
export function parseProcNet(text: string, proto: 'tcp' | 'udp', little = LITTLE): ProcSocket[] {
  const out: ProcSocket[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !/^\d+:$/.test(f[0]!)) continue;
    const [la, lp] = f[1]!.split(':'), [ra, rp] = f[2]!.split(':');
    const local = procAddress(la ?? '', little), remote = procAddress(ra ?? '', little);
    const inode = Number(f[9]);
    if (local === null || remote === null || !(inode > 0)) continue;
    const rport = Number.parseInt(rp ?? '', 16);
    const peerless = rport === 0 && ANY.has(remote);
    out.push({
      proto, local, lport: Number.parseInt(lp ?? '', 16),
      remote: peerless ? null : remote, rport: peerless ? null : rport,
      state: STATES[Number.parseInt(f[3]!, 16)] ?? f[3]!, inode,
    });
  }
  return out;
}

/** Smoothed round-trip times, seconds, by socket inode, from `ss -tinHe` (each socket's line
 * has ino:N; its info, on the same line or the next, rtt:SRTT/RTTVAR in milliseconds). */
export function parseSsRtt(text: string): Map<number, number> {
  const out = new Map<number, number>();
  // a socket's record: its line and the indented ones after it
  for (const rec of text.split(/\n(?=\S)/)) {
    const ino = /(?:^|\s)ino:(\d+)/.exec(rec), rtt = /(?:^|\s)rtt:([\d.]+)\/[\d.]+/.exec(rec);
    if (ino && rtt && Number(ino[1]) > 0) out.set(Number(ino[1]), Number(rtt[1]) / 1000);
  }
  return out;
}

/** An address as text comparable with what parseProcNet gives: RFC 5952 IPv6, a mapped IPv4
 * as IPv4; null if it is not an address. */
export function canonicalAddress(a: string): string | null {
  const v = a.trim().replace(/^\[(.*)\]$/, '$1');
  if (isIP(v) === 4) return v;
  if (isIP(v) !== 6) return null;
  const b = parseIPv6(v, 'address', 'peer');
  const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  return mapped ? b.subarray(12).join('.') : formatIPv6(b);
}

/** Whether a socket matches the query's protocol and peer (peer already canonical). */
export function matches(s: ProcSocket, proto: 'tcp' | 'udp' | undefined, peer: string | null): boolean {
  return (!proto || s.proto === proto) && (peer === null || s.remote === peer);
}

/** Reads a file or link of a process; null when it is gone or not ours to read. */
async function procRead<T>(f: () => Promise<T>): Promise<T | null> {
  try {
    return await f();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EPERM' || code === 'ESRCH' || code === 'ENOTDIR' || code === 'EINVAL') return null;
    throw e;
  }
}

/** The pids to look at: the one asked for, else every process. */
async function pids(q: ConnectionQuery): Promise<number[]> {
  if (q.pid !== undefined) return [q.pid];
  return (await readdir('/proc')).filter((d) => /^\d+$/.test(d)).map(Number);
}

/** The process's command name, and whether it is the program asked for (comm, or the base name
 * of its executable); null when it is gone. */
async function identify(pid: number, program: string | undefined): Promise<{ comm: string; match: boolean } | null> {
  const comm = (await procRead(() => readFile(`/proc/${pid}/comm`, 'utf8')))?.replace(/\n$/, '');
  if (comm === undefined) return null;
  if (program === undefined || comm === program) return { comm, match: true };
  const exe = await procRead(() => readlink(`/proc/${pid}/exe`));
  return { comm, match: exe !== null && basename(exe.replace(/ \(deleted\)$/, '')) === program };
}

/** The socket inodes among a process's descriptors; null when they cannot be read. */
async function socketInodes(pid: number): Promise<Set<number> | null> {
  const fds = await procRead(() => readdir(`/proc/${pid}/fd`));
  if (!fds) return null;
  const out = new Set<number>();
  for (const fd of fds) {
    const l = await procRead(() => readlink(`/proc/${pid}/fd/${fd}`));
    const m = l && /^socket:\[(\d+)\]$/.exec(l);
    if (m) out.add(Number(m[1]));
  }
  return out;
}

/** The TCP and UDP sockets of a network namespace by inode, read through one of its processes. */
async function socketTable(pid: number): Promise<Map<number, ProcSocket>> {
  const out = new Map<number, ProcSocket>();
  for (const [file, proto] of [['tcp', 'tcp'], ['tcp6', 'tcp'], ['udp', 'udp'], ['udp6', 'udp']] as const) {
    const text = await procRead(() => readFile(`/proc/${pid}/net/${file}`, 'utf8')); // no tcp6 without IPv6
    if (text) for (const s of parseProcNet(text, proto)) out.set(s.inode, s);
  }
  return out;
}

/** The TCP or UDP socket descriptor `fd` of process `pid` is, as the kernel lists it in the
 * process's network namespace; null when it is gone, not a socket, or neither TCP nor UDP
 * (the daemon's live characterisation: the flow table may not know a socket's local end). */
export async function socketOfDescriptor(pid: number, fd: number): Promise<ProcSocket | null> {
  const l = await procRead(() => readlink(`/proc/${pid}/fd/${fd}`));
  const m = l && /^socket:\[(\d+)\]$/.exec(l);
  if (!m) return null;
  return (await socketTable(pid)).get(Number(m[1])) ?? null;
}

/** Round-trip times of the TCP sockets of a network namespace by inode: this process's own
 * (pid null), or process pid's, entered with nsenter; empty when ss cannot say. */
async function tcpRtts(pid: number | null): Promise<Map<number, number>> {
  const ss = ['ss', '-tinHe'];
  try {
    return parseSsRtt((await run(pid === null ? ss : ['nsenter', `--net=/proc/${pid}/ns/net`, ...ss], { pkg: pid === null ? 'iproute2' : 'util-linux', timeoutMs: 10_000 })).stdout);
  } catch {
    return new Map(); // no ss, not root enough to enter, or the process is gone: listed without RTT
  }
}

/** The TCP and UDP sockets (IPv4 and IPv6) of the process `pid`, of every process called
 * `program`, or with the remote address `peer` (given together: all of them hold), optionally
 * of one protocol; ordered by pid, then by descriptor. Asynchronous: a daemon calling it does
 * not wait on /proc or ss. */
export async function connections(q: ConnectionQuery): Promise<Connection[]> {
  if (q.pid === undefined && q.program === undefined && q.peer === undefined) throw new QosError('QOS_ERR_USAGE', 'connections: name a process (pid), a program or a peer address, or more than one');
  if (q.pid !== undefined && !(Number.isInteger(q.pid) && q.pid > 0)) throw new QosError('QOS_ERR_USAGE', `connections: the pid is a whole number above 0, not ${q.pid}`);
  if (q.proto !== undefined && q.proto !== 'tcp' && q.proto !== 'udp') throw new QosError('QOS_ERR_USAGE', `connections: the protocol is tcp or udp, not "${String(q.proto)}"`);
  const peer = q.peer === undefined ? null : canonicalAddress(q.peer);
  if (q.peer !== undefined && peer === null) throw new QosError('QOS_ERR_USAGE', `connections: the peer is an IPv4 or IPv6 address, not "${q.peer}"`);
  const tables = new Map<string, Map<number, ProcSocket>>(); // by network namespace
  const found: Connection[] = [];
  const nsOf = new Map<Connection, { ns: string; pid: number }>();
  for (const pid of (await pids(q)).sort((a, b) => a - b)) {
    const who = await identify(pid, q.program);
    if (!who?.match) continue;
    const inodes = await socketInodes(pid);
    if (!inodes?.size) continue;
    const ns = await procRead(() => readlink(`/proc/${pid}/ns/net`)) ?? `pid ${pid}`;
    let table = tables.get(ns);
    if (!table) tables.set(ns, (table = await socketTable(pid)));
    for (const inode of inodes) {
      const s = table.get(inode);
      if (!s || !matches(s, q.proto, peer)) continue;
      const c: Connection = { ...s, pid, program: who.comm, rttS: null };
      found.push(c); nsOf.set(c, { ns, pid });
    }
  }
  // one ss per namespace holding TCP connections
  const own = await procRead(() => readlink('/proc/self/ns/net'));
  const rtts = new Map<string, Promise<Map<number, number>>>();
  for (const c of found) {
    if (c.proto !== 'tcp' || c.remote === null) continue;
    const { ns, pid } = nsOf.get(c)!;
    if (!rtts.has(ns)) rtts.set(ns, tcpRtts(ns === own ? null : pid));
    c.rttS = (await rtts.get(ns)!).get(c.inode) ?? null;
  }
  return found;
}
