/* RSVP messages for people and for programs (`qos rsvp decode`): one line for the common header,
 * one per object with its fields (nested ones dotted: tspec.r); JSON keeps the values' own shape,
 * with Infinity (a token bucket's "no peak rate") written as the string "Infinity". */

import { checkOrder, type RsvpMessage, readCommonHeader } from './message.js';
import type { RsvpObject } from './objects.js';

function flat(v: unknown, prefix = ''): string[] {
  if (v === null || typeof v !== 'object') return [`${prefix}=${v === Infinity ? 'inf' : typeof v === 'string' && /\s/.test(v) ? JSON.stringify(v) : String(v)}`];
  if (Array.isArray(v)) return v.length ? v.flatMap((x, i) => flat(x, `${prefix}[${i}]`)) : [`${prefix}=[]`];
  return Object.entries(v).flatMap(([k, x]) => flat(x, prefix ? `${prefix}.${k}` : k));
}

/** One object as a line: its kind, then field=value. */
export function formatObject(o: RsvpObject): string {
  const { kind, ...rest } = o;
  const name = kind === 'UNKNOWN' ? `class ${o.classNum}` : kind;
  return `  ${name.padEnd(16)} ${flat(rest).join(' ')}`;
}

/** A message and its header as read from bytes, with any problem of object order. */
export function formatMessage(m: RsvpMessage, bytes: Uint8Array): string {
  const h = readCommonHeader(bytes);
  const order = checkOrder(m);
  return [
    `${m.type} (type ${h.typeNum}) flags 0x${h.flags.toString(16)} send-TTL ${h.sendTtl} length ${h.length} checksum 0x${h.checksum.toString(16).padStart(4, '0')}`,
    ...m.objects.map(formatObject),
    ...order.map((p) => `  order: ${p}`),
  ].join('\n');
}

/** The message as JSON-ready data: header fields, objects, order problems. */
export function messageJson(m: RsvpMessage, bytes: Uint8Array): Record<string, unknown> {
  const h = readCommonHeader(bytes);
  return { type: m.type, flags: m.flags, sendTtl: m.sendTtl, length: h.length, checksum: h.checksum, objects: m.objects, orderProblems: checkOrder(m) };
}

/** JSON.stringify with Infinity as "Infinity". */
export function toJson(v: unknown, indent = 2): string {
  return JSON.stringify(v, (_k, x: unknown) => (x === Infinity ? 'Infinity' : x), indent || undefined);
}

/** The same on one line: a JSON line of a stream. */
export const toJsonLine = (v: unknown): string => toJson(v, 0);
