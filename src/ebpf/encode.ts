/* The bytes of bpf/exe-mark.bpf.c's maps and events (pure): keys and entries of `qosd_exe`,
 * the agent map's pid and start time, and the records of `qosd_events`. The layouts are the C
 * structures' (little-endian, the machine's); src/ebpf/encode.test.ts pins their sizes. */

import { MAX_SLOTS, type Slot } from './rules.js';

export const KEY_SIZE = 16;    // struct exe_key
export const SLOT_SIZE = 64;   // struct slot
export const ENTRY_SIZE = 16 + MAX_SLOTS * SLOT_SIZE; // struct entry
export const EVENT_SIZE = 72;  // struct event

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
  if (slots.length > MAX_SLOTS) throw new RangeError(`an entry holds ${MAX_SLOTS} slots, not ${slots.length}`);
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

/** The agent map's key (the process's pid) and value (its start time in clock ticks). */
export function agentKey(pid: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(pid >>> 0);
  return b;
}
export function agentValue(start: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(start));
  return b;
}

export const EV_OPEN = 1, EV_CLOSE = 2, EV_DENY = 3;
export const R_TOS = 1, R_PRIO = 2, R_APP_TOS = 4;

export interface EbpfEvent {
  kind: 'open' | 'close' | 'deny';
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
  errno: number;
  remote: { address: string; port: number } | null;
}

/** The records events() read (each a u32 length, then the record); records of another size
 * are skipped. */
export function decodeEvents(buf: Buffer): EbpfEvent[] {
  const out: EbpfEvent[] = [];
  for (let at = 0; at + 4 <= buf.length;) {
    const len = buf.readUInt32LE(at);
    const o = at + 4;
    at = o + len;
    if (len !== EVENT_SIZE || at > buf.length) continue;
    const kind = buf.readUInt32LE(o + 16);
    if (kind !== EV_OPEN && kind !== EV_CLOSE && kind !== EV_DENY) continue;
    const family = buf.readUInt8(o + 38) === 10 ? 'inet6' : 'inet';
    const port = buf.readUInt16LE(o + 44);
    const addr = buf.subarray(o + 52, o + 68);
    out.push({
      kind: kind === EV_OPEN ? 'open' : kind === EV_CLOSE ? 'close' : 'deny',
      cookie: buf.readBigUInt64LE(o),
      pid: buf.readUInt32LE(o + 20), uid: buf.readUInt32LE(o + 24), gid: buf.readUInt32LE(o + 28),
      file: { dev: buf.readUInt32LE(o + 32), ino: buf.readBigUInt64LE(o + 8) },
      rule: buf.readUInt16LE(o + 36), family, type: buf.readUInt8(o + 39), protocol: buf.readUInt8(o + 40), hook: buf.readUInt8(o + 41),
      tos: buf.readUInt8(o + 42), prio: buf.readUInt8(o + 43), result: buf.readUInt16LE(o + 46), errno: buf.readUInt32LE(o + 48),
      remote: kind === EV_CLOSE ? null : { address: family === 'inet' ? [...addr.subarray(0, 4)].join('.') : v6text(addr), port },
    });
  }
  return out;
}

function v6text(b: Buffer): string {
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(b.readUInt16BE(i).toString(16));
  // the longest run of zero groups as ::
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === '0') j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return g.join(':');
  return `${g.slice(0, best).join(':')}::${g.slice(best + bestLen).join(':')}`;
}
