/* A connection's notification ring (docs/protocol.md, "Notification ring"): shared memory the
 * daemon creates for one agent connection (a memfd, passed with the reply to `Ring`), in which
 * the agent's thread writes the notifications it would otherwise send as lines - Cached, Close,
 * Shutdown - as fixed 64-byte records, without a system call. The daemon reads them when it
 * polls, and before any line of the same process, so they keep their order with the requests.
 *
 * One writer (the agent thread that owns the connection) and one reader (the daemon); each
 * slot's state word says whose it is: FREE (the agent may write it), FULL (a record waits for
 * the daemon), CLOSED (the daemon let go of the ring: the agent stops using it). The memory
 * starts as zeros: every slot FREE, so the daemon touches none of it but the slots it reads.
 *
 * This file is the layout and the codec, pure: encodeSlot writes what the agent writes
 * (agent/ring.c; tests use it to play an agent), RingReader reads and frees slots in order. */

import { parseAddr } from '../policy/net.js';
import { FD_MAX, type Message, type SockAddr } from './messages.js';
import { QosError } from '../errors.js';

/** Bytes per record. */
export const RING_SLOT_BYTES = 64;
/** The record layout this file reads (the `Ring` request names the one the agent writes). */
export const RING_LAYOUT = 1;
/** Slots the daemon gives a connection (128 KiB): at the daemon's busy poll interval that
 * holds what one thread connecting as fast as it can writes meanwhile, several times over. */
export const RING_SLOTS = 2048;
export const RING_MIN_SLOTS = 64;
export const RING_MAX_SLOTS = 65_536;

export const SLOT_FREE = 0;
export const SLOT_FULL = 1;
export const SLOT_CLOSED = 2;

/** What a record is: a call decided from the cache (the Cached line's inner call), or a notice. */
export const RING_KINDS = { Socket: 1, Connect: 2, SendTo: 3, Close: 4, Shutdown: 5 } as const;
export type RingKind = keyof typeof RING_KINDS;
/** A Connect or SendTo record that stands for its socket's pending Socket too (same generation;
 * the socket's family, type and protocol where a Socket record has them). */
export const WITH_SOCKET = 1;
const KIND_NAMES: (RingKind | undefined)[] = [];
for (const [k, v] of Object.entries(RING_KINDS)) KIND_NAMES[v] = k as RingKind;

/* Offsets within a slot (bytes; the machine's byte order, addresses and nothing else in network
 * order, as in a sockaddr). */
const O_STATE = 0; // u32
const O_KIND = 4; // u8
const O_FAMILY = 5; // u8: the socket's (Socket)
const O_TYPE = 6; // u8: the socket's (Socket)
const O_AFAMILY = 7; // u8: the address's (Connect, SendTo)
const O_FD = 8; // i32
const O_ARG = 12; // i32: protocol (Socket), how (Shutdown)
const O_PORT = 16; // u16
const O_FLAGS = 18; // u16: WITH_SOCKET
const O_SHED = 20; // u32: records the agent dropped (ring full) just before this one
const O_GEN_LO = 24; // u32: the cached answer's generation (Socket, Connect, SendTo)
const O_GEN_HI = 28; // u32
const O_ADDR = 32; // 16 bytes: IPv4 in the first 4


/** One record as the agent means it (encodeSlot) and as the daemon reads it. */
export interface RingRecord {
  kind: RingKind;
  fd: number;
  /** Socket: the socket's kind */
  family?: number;
  sockType?: number;
  protocol?: number;
  /** Connect, SendTo */
  address?: SockAddr;
  /** Shutdown */
  how?: number;
  /** Socket, Connect, SendTo: the generation of the cached answer applied */
  generation?: number;
  /** records dropped just before this one */
  shed?: number;
  /** Connect, SendTo: it stands for the socket's Socket too (family, sockType, protocol) */
  withSocket?: boolean;
}

/** Typed views over a ring's memory, made once. */
export interface Views { u8: Uint8Array; u16: Uint16Array; i32: Int32Array; u32: Uint32Array }

export function views(buf: ArrayBuffer): Views {
  return { u8: new Uint8Array(buf), u16: new Uint16Array(buf), i32: new Int32Array(buf), u32: new Uint32Array(buf) };
}

/** Slots in a ring of this many bytes, or 0 if that is not a ring's size. */
export function ringSlots(bytes: number): number {
  const n = bytes / RING_SLOT_BYTES;
  return Number.isInteger(n) && n >= RING_MIN_SLOTS && n <= RING_MAX_SLOTS && (n & (n - 1)) === 0 ? n : 0;
}

/** Writes r into slot i of buf and marks it FULL: what the agent does (agent/ring.c). Returns
 * false, writing nothing, if the slot is not FREE. */
export function encodeSlot(buf: ArrayBuffer, i: number, r: RingRecord): boolean {
  const v = views(buf);
  const b = i * RING_SLOT_BYTES;
  if (Atomics.load(v.u32, (b + O_STATE) / 4) !== SLOT_FREE) return false;
  v.u8.fill(0, b + 4, b + RING_SLOT_BYTES);
  v.u8[b + O_KIND] = RING_KINDS[r.kind];
  v.u8[b + O_FAMILY] = r.family ?? 0;
  v.u8[b + O_TYPE] = r.sockType ?? 0;
  v.i32[(b + O_FD) / 4] = r.fd;
  v.i32[(b + O_ARG) / 4] = r.kind === 'Shutdown' ? (r.how ?? 0) : (r.protocol ?? 0);
  v.u32[(b + O_SHED) / 4] = r.shed ?? 0;
  const gen = r.generation ?? 0;
  v.u32[(b + O_GEN_LO) / 4] = gen % 2 ** 32;
  v.u32[(b + O_GEN_HI) / 4] = Math.floor(gen / 2 ** 32);
  v.u16[(b + O_FLAGS) / 2] = r.withSocket ? WITH_SOCKET : 0;
  if (r.address) {
    v.u8[b + O_AFAMILY] = r.address.family;
    v.u16[(b + O_PORT) / 2] = r.address.port;
    v.u8.set(addressBytes(r.address), b + O_ADDR);
  }
  Atomics.store(v.u32, (b + O_STATE) / 4, SLOT_FULL);
  return true;
}

/** An address's bytes in network order: 4 for IPv4, 16 for IPv6 (parsed as the policy does). */
function addressBytes(a: SockAddr): Uint8Array {
  const w = parseAddr(a.host);
  if (!w) throw new QosError('QOS_ERR_INTERNAL', `not an address: ${a.host}`);
  const out = new Uint8Array(16), view = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) view.setUint32(4 * i, w[i]!);
  return a.family === 2 ? out.subarray(12) : out;
}

/** An IPv6 address as inet_ntop writes it (RFC 5952: lower case, the longest run of two or more
 * zero groups as "::", the first of equal runs; an IPv4-mapped or -compatible address with its
 * last 32 bits dotted), so a record and a line about the same call name the same host. */
export function formatIPv6(b: Uint8Array, at: number): string {
  const w: number[] = new Array(8);
  for (let i = 0; i < 8; i++) w[i] = (b[at + 2 * i]! << 8) | b[at + 2 * i + 1]!;
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  if (bestLen < 2) best = -1;
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (i === best) {
      s += i === 0 ? '::' : ':';
      i += bestLen - 1;
      continue;
    }
    if (i === 6 && best === 0 && (bestLen === 6 || (bestLen === 5 && w[5] === 0xffff))) {
      s += `${b[at + 12]}.${b[at + 13]}.${b[at + 14]}.${b[at + 15]}`;
      break;
    }
    s += w[i]!.toString(16);
    if (i < 7) s += ':';
  }
  return s;
}

/** The last IPv4 address made text, by its 32 bits: a program connects to the same few places
 * over and over, and the text is the same string each time (cheaper to make, and to look up). */
let lastV4 = -1, lastV4Text = '';
function ipv4Text(word: number, u8: Uint8Array, at: number): string {
  if (word !== lastV4) {
    lastV4 = word;
    lastV4Text = `${u8[at]}.${u8[at + 1]}.${u8[at + 2]}.${u8[at + 3]}`;
  }
  return lastV4Text;
}

/** What the agent's connection is, for the messages a record becomes. */
export interface RingCaller { pid: number; uid: number; cmd: string }

/** The message a record stands for (a Cached call, Close or Shutdown), as decode() would
 * give for the line the agent would otherwise have sent; a string says what is wrong. A call
 * with its Socket stands for two messages: its Socket if `socket`, else the call. Either is
 * given only if the whole record is well formed. */
export function decodeSlot(v: Views, i: number, who: RingCaller, socket = false): Message | string {
  const b = i * RING_SLOT_BYTES;
  const kind = KIND_NAMES[v.u8[b + O_KIND]!];
  if (!kind) return `record ${i}: unknown kind ${v.u8[b + O_KIND]}`;
  const fd = v.i32[(b + O_FD) / 4]!;
  if (fd < 0 || fd > FD_MAX) return `record ${i}: fd ${fd} out of range`;
  const { pid, uid, cmd } = who;
  if (kind === 'Close') return { type: 'Close', pid, uid, cmd, fd };
  const arg = v.i32[(b + O_ARG) / 4]!;
  if (kind === 'Shutdown') return arg >= 0 && arg <= 2 ? { type: 'Shutdown', pid, uid, cmd, fd, how: arg } : `record ${i}: how ${arg} out of range`;
  const hi = v.u32[(b + O_GEN_HI) / 4]!;
  const generation = hi * 2 ** 32 + v.u32[(b + O_GEN_LO) / 4]!;
  if (hi >= 2 ** 21) return `record ${i}: generation out of range`;
  const withSocket = kind === 'Socket' || (v.u16[(b + O_FLAGS) / 2]! & WITH_SOCKET) !== 0;
  if (withSocket) {
    const sockType = v.u8[b + O_TYPE]!;
    if (sockType > 15 || arg < 0 || arg > 65535) return `record ${i}: socket type ${sockType} or protocol ${arg} out of range`;
  }
  const family = v.u8[b + O_AFAMILY]!;
  if (kind !== 'Socket' && family !== 2 && family !== 10) return `record ${i}: address family ${family} is not inet or inet6`;
  if (kind === 'Socket' || (socket && withSocket)) {
    return { type: 'Cached', pid, uid, cmd, generation, inner: { type: 'Socket', pid, uid, cmd, family: v.u8[b + O_FAMILY]!, sockType: v.u8[b + O_TYPE]!, protocol: arg, fd } };
  }
  const host = family === 2 ? ipv4Text(v.u32[(b + O_ADDR) / 4]!, v.u8, b + O_ADDR) : formatIPv6(v.u8, b + O_ADDR);
  const address: SockAddr = { family, host, port: v.u16[(b + O_PORT) / 2]! };
  const inner: Message = kind === 'Connect'
    ? { type: 'Connect', pid, uid, cmd, fd, address, sqos: '', gqos: '' }
    : { type: 'SendTo', pid, uid, cmd, fd, address };
  return { type: 'Cached', pid, uid, cmd, generation, inner };
}

/** Whether slot i holds a call that stands for its Socket too (read in two parts). */
function isPair(v: Views, i: number): boolean {
  const b = i * RING_SLOT_BYTES;
  const kind = v.u8[b + O_KIND]!;
  return (kind === RING_KINDS.Connect || kind === RING_KINDS.SendTo) && (v.u16[(b + O_FLAGS) / 2]! & WITH_SOCKET) !== 0;
}

/** The daemon's end of one ring: reads records in order and frees their slots. */
export class RingReader {
  private readonly v: Views;
  private tail = 0;
  /** the record at tail is a call with its Socket, and its Socket has been read: the call
   * comes next (its slot is freed after that; nothing is made ahead of being read) */
  private half = false;
  /** records the agent said it dropped (the ring was full) */
  shed = 0;
  constructor(buf: ArrayBuffer, readonly slots: number) {
    this.v = views(buf);
  }

  /** Whether a record waits. */
  get pending(): boolean {
    return this.v.u32.length > 0 && Atomics.load(this.v.u32, (this.tail * RING_SLOT_BYTES) / 4) !== SLOT_FREE;
  }

  /** The next record's message (a string if it is malformed), or null if none waits. Its slot
   * is free again when this returns. */
  next(who: RingCaller): Message | string | null {
    const v = this.v;
    const i = this.tail;
    const w = (i * RING_SLOT_BYTES) / 4;
    if (v.u32.length === 0) return null; // released
    if (this.half) {
      // the call of a record whose state was read (FULL) with its Socket
      this.half = false;
      return this.free(i, decodeSlot(v, i, who));
    }
    const state = Atomics.load(v.u32, w);
    if (state === SLOT_FREE) return null;
    if (state !== SLOT_FULL) return this.free(i, `record ${i}: state ${state}`);
    const socket = isPair(v, i);
    const m = decodeSlot(v, i, who, socket);
    if (socket && typeof m !== 'string') {
      this.half = true;
      return m;
    }
    return this.free(i, m);
  }

  /** Frees slot i (the agent may write it again) and returns m, what it was read as. */
  private free<T>(i: number, m: T): T {
    const v = this.v;
    this.shed += v.u32[(i * RING_SLOT_BYTES + O_SHED) / 4]!;
    Atomics.store(v.u32, (i * RING_SLOT_BYTES) / 4, SLOT_FREE);
    this.tail = (i + 1) % this.slots;
    return m;
  }

  /** Tells the agent the ring is no longer read: the slot it writes next (the one after the
   * last record read, if it is free) says CLOSED. */
  close(): void {
    const v = this.v;
    if (v.u32.length === 0) return;
    // (a call whose Socket was read goes unread: its slot is the last one read)
    if (this.half) {
      this.half = false;
      this.free(this.tail, null);
    }
    Atomics.compareExchange(v.u32, (this.tail * RING_SLOT_BYTES) / 4, SLOT_FREE, SLOT_CLOSED);
  }
}
