/* The bytes of bpf/exe-mark.bpf.c's maps (pure): keys and entries of `qosd_exe`, the agent
 * map's pid and start time, the decided sockets of `qosd_sockets` and the counters. The layouts are the C
 * structures' (little-endian, the machine's); src/ebpf/encode.test.ts pins their sizes. */

import { formatIPv6 } from '../protocol/note-ring.js';
import { MAX_SLOTS, type Slot } from './rules.js';
import { QosError } from '../errors.js';

export const KEY_SIZE = 16;    // struct exe_key
export const SLOT_SIZE = 64;   // struct slot
export const ENTRY_SIZE = 16 + MAX_SLOTS * SLOT_SIZE; // struct entry

/** An executable file as the kernel names it: s_dev in the kernel's encoding, the inode. */
export interface FileId { dev: number; ino: bigint }

/** stat(2)'s st_dev (glibc's encoding) as the kernel's dev_t (MKDEV: major << 20 | minor). */
export function kernelDev(stDev: bigint): number {
  const major = Number(((stDev >> 8n) & 0xfffn) | ((stDev >> 32n) & ~0xfffn));
  const minor = Number((stDev & 0xffn) | ((stDev >> 12n) & ~0xffn));
  return ((major << 20) | minor) >>> 0;
}

export function encodeKey(gen: number, f: FileId, into = Buffer.alloc(KEY_SIZE), at = 0): Buffer {
  into.writeUInt32LE(gen >>> 0, at);
  into.writeUInt32LE(f.dev >>> 0, at + 4);
  into.writeBigUInt64LE(f.ino, at + 8);
  return into;
}

export function encodeEntry(slots: readonly Slot[], into = Buffer.alloc(ENTRY_SIZE), at = 0): Buffer {
  if (slots.length > MAX_SLOTS) throw new QosError('QOS_ERR_INTERNAL', `an entry holds ${MAX_SLOTS} slots, not ${slots.length}`);
  into.fill(0, at, at + ENTRY_SIZE);
  into.writeUInt32LE(slots.length, at);
  slots.forEach((s, i) => {
    const o = at + 16 + i * SLOT_SIZE;
    into.writeUInt8(s.events, o);
    into.writeUInt8(s.families, o + 1);
    into.writeUInt8(s.types, o + 2);
    into.writeUInt8(s.protos, o + 3);
    into.writeUInt8(s.flags, o + 4);
    into.writeUInt8(s.tos, o + 5);
    into.writeUInt8(s.prio, o + 6);
    into.writeUInt16LE(s.portLo, o + 8);
    into.writeUInt16LE(s.portHi, o + 10);
    into.writeUInt16LE(Math.min(s.rule, 0xffff), o + 12);
    into.writeUInt16LE(s.limit, o + 14);
    into.writeUInt32LE(s.uid >>> 0, o + 16);
    into.writeUInt32LE(s.gid >>> 0, o + 20);
    into.writeUInt32LE(s.errno >>> 0, o + 24);
    for (let w = 0; w < 4; w++) {
      into.writeUInt32LE(s.net[w]! >>> 0, o + 32 + 4 * w);
      into.writeUInt32LE(s.mask[w]! >>> 0, o + 48 + 4 * w);
    }
  });
  return into;
}

/** A 32-bit key or value (a pid in the agent map, an index of the generation and counter
 * arrays, a generation). */
export function u32le(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}

/** The agent map's value: the process's start time in clock ticks (its key: the pid, u32le). */
export function agentValue(start: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(start));
  return b;
}

export const R_TOS = 1, R_PRIO = 2, R_APP_TOS = 4, R_LIMIT = 8;
export const SOCKREC_SIZE = 64; // struct sockrec

/** A socket the programs decided, as `qosd_sockets` holds it. */
export interface DecidedSocket {
  cookie: bigint;
  pid: number;
  uid: number;
  gid: number;
  file: FileId;
  rule: number;
  family: 'inet' | 'inet6';
  type: number;
  protocol: number;
  /** 1 connect, 2 sendto */
  hook: number;
  tos: number;
  prio: number;
  /** R_* bits: what was set */
  result: number;
  remote: { address: string; port: number };
}

/** The entries of a dump() of `qosd_sockets`: each a cookie (u64), then its record. */
export function decodeSockets(buf: Buffer): DecidedSocket[] {
  const out: DecidedSocket[] = [];
  for (let at = 0; at + 8 + SOCKREC_SIZE <= buf.length; at += 8 + SOCKREC_SIZE) {
    const o = at + 8;
    const family = buf.readUInt8(o + 26) === 10 ? 'inet6' : 'inet';
    const addr = buf.subarray(o + 36, o + 52);
    out.push({
      cookie: buf.readBigUInt64LE(at),
      pid: buf.readUInt32LE(o + 8), uid: buf.readUInt32LE(o + 12), gid: buf.readUInt32LE(o + 16),
      file: { dev: buf.readUInt32LE(o + 20), ino: buf.readBigUInt64LE(o) },
      rule: buf.readUInt16LE(o + 24), family, type: buf.readUInt8(o + 27), protocol: buf.readUInt8(o + 28), hook: buf.readUInt8(o + 29),
      tos: buf.readUInt8(o + 30), prio: buf.readUInt8(o + 31), result: buf.readUInt16LE(o + 34),
      remote: { address: family === 'inet' ? [...addr.subarray(0, 4)].join('.') : formatIPv6(buf, o + 36), port: buf.readUInt16LE(o + 32) },
    });
  }
  return out;
}

/** A per-CPU array's value as lookup() gives it (one u64 per CPU, each 8 bytes): their sum. */
export function perCpuSum(v: Buffer | null): number {
  let n = 0n;
  for (let at = 0; v && at + 8 <= v.length; at += 8) n += v.readBigUInt64LE(at);
  return Number(n);
}
