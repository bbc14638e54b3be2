/* Agent protocol messages (docs/protocol.md): one request per line, a Tcl list of
 * "Type pid uid cmd args...", the call's arguments in the order of the C call (paper 4.1.3).
 * decode() validates a line into a typed message, encode() renders one; the replies are
 * replies.ts, the line framing lines.ts. */

import { QosError } from '../errors.js';
import { MAX_LINE } from './lines.js';
import { formatList, parseList } from './tcl-list.js';

export const PROTOCOL_VERSION = 1;
export { MAX_LINE };

export interface SockAddr {
  family: number;
  host: string;
  port: number;
}

interface Base {
  pid: number;
  uid: number;
  cmd: string;
}

export type Message =
  | (Base & { type: 'Startup'; version: number })
  | (Base & { type: 'Ring'; layout: number })
  | (Base & { type: 'Socket'; family: number; sockType: number; protocol: number; fd: number })
  | (Base & { type: 'Connect'; fd: number; address: SockAddr; sqos: string; gqos: string })
  | (Base & { type: 'Bind'; fd: number; address: SockAddr })
  | (Base & { type: 'Listen'; fd: number; backlog: number })
  | (Base & { type: 'Accept'; fd: number; address: SockAddr | null; newfd: number })
  | (Base & { type: 'SendTo'; fd: number; address: SockAddr })
  | (Base & { type: 'SetSockOpt'; fd: number; level: number; optname: number; value: number })
  | (Base & { type: 'Shutdown'; fd: number; how: number })
  | (Base & { type: 'Close'; fd: number })
  | (Base & { type: 'Cleanup' })
  | (Base & { type: 'Cached'; generation: number; inner: CacheableMessage });

/** Calls whose decision an agent may cache (the daemon says so with `CACHE gen`). */
export type CacheableMessage = Extract<Message, { type: 'Socket' | 'Connect' | 'SendTo' }>;
export const CACHEABLE: ReadonlySet<MessageType> = new Set(['Socket', 'Connect', 'SendTo']);

export type MessageType = Message['type'];

/** Argument names after "Type pid uid cmd", per message type: the wire contract. */
export const SIGNATURES: Record<MessageType, readonly string[]> = {
  Startup: ['version'],
  Ring: ['layout'],
  Socket: ['family', 'type', 'protocol', 'fd'],
  Connect: ['fd', 'address', 'sqos', 'gqos'],
  Bind: ['fd', 'address'],
  Listen: ['fd', 'backlog'],
  Accept: ['fd', 'address', 'newfd'],
  SendTo: ['fd', 'address'],
  SetSockOpt: ['fd', 'level', 'optname', 'value'],
  Shutdown: ['fd', 'how'],
  Close: ['fd'],
  Cleanup: [],
  Cached: ['generation', 'type', '...args'],
};

/** Messages the daemon answers; the others are notifications and get no reply. */
export const NOTIFICATIONS: ReadonlySet<MessageType> = new Set(['Close', 'Shutdown', 'Cleanup', 'Cached']);

function bad(msg: string): never {
  throw new QosError('QOS_ERR_PROTOCOL', msg);
}

/** An optional minus and 1 to 10 decimal digits, in [min, max]. A loop over char codes, not a
 * regular expression and Number(): every field of every line goes through here (10% of the
 * daemon's time per decision, measured in process). */
function int(s: string, name: string, min: number, max: number): number {
  const neg = s.charCodeAt(0) === 45 /* - */ ? 1 : 0;
  const n = s.length - neg;
  let v = 0;
  for (let i = neg; i < s.length && n <= 10; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) { v = NaN; break; }
    v = v * 10 + d;
  }
  if (n < 1 || n > 10 || Number.isNaN(v)) bad(`${name} is not an integer: ${JSON.stringify(s.slice(0, 40))}`);
  if (neg) v = -v;
  if (v < min || v > max) bad(`${name} out of range [${min}, ${max}]: ${v}`);
  return v;
}

export const FD_MAX = 2 ** 31 - 1;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6 = /^[0-9a-fA-F:.]{2,45}$/;

/** Whether host is an address of family (2: dotted IPv4, 10: IPv6 text) as address() takes it. */
export function hostOfFamily(family: 2 | 10, host: string): boolean {
  return family === 2 ? IPV4.test(host) : IPV6.test(host) && host.includes(':');
}

function address(s: string, name: string, optional = false): SockAddr | null {
  const parts = parseList(s);
  if (optional && parts.length === 0) return null;
  if (parts.length !== 3) bad(`${name} must be a list {family host port}, got ${parts.length} elements`);
  const family = int(parts[0]!, `${name} family`, 0, 65535);
  const host = parts[1]!;
  if (family === 2 && !hostOfFamily(2, host)) bad(`${name} host is not an IPv4 address: ${JSON.stringify(host.slice(0, 64))}`);
  if (family === 10 && !hostOfFamily(10, host)) bad(`${name} host is not an IPv6 address: ${JSON.stringify(host.slice(0, 64))}`);
  if (family !== 2 && family !== 10 && host !== '') bad(`${name}: family ${family} is not inet or inet6`);
  return { family, host, port: int(parts[2]!, `${name} port`, 0, 65535) };
}

/** Decodes one request line (without its newline). Throws QosError(QOS_ERR_PROTOCOL). */
export function decode(line: string): Message {
  if (line.length > MAX_LINE) throw new QosError('QOS_ERR_MESSAGE_TOO_LONG', `message of ${line.length} bytes exceeds ${MAX_LINE}`);
  return decodeTokens(parseList(line));
}

function decodeTokens(t: string[]): Message {
  const type = t[0] as MessageType | undefined;
  if (type === undefined) bad('empty message');
  const sig = Object.hasOwn(SIGNATURES, type) ? SIGNATURES[type] : undefined;
  if (!sig) bad(`unknown message type ${JSON.stringify(type.slice(0, 40))}`);
  if (type === 'Cached') return decodeCached(t);
  if (t.length !== 4 + sig.length)
    bad(`${type} takes ${4 + sig.length} tokens (Type pid uid cmd ${sig.join(' ')}), got ${t.length}`);
  // Plain object literals, not spreads: on this V8 an object spread costs microseconds.
  const pid = int(t[1]!, 'pid', 1, 2 ** 22), uid = int(t[2]!, 'uid', 0, 2 ** 32 - 1), cmd = t[3]!;
  switch (type) {
    case 'Startup': return { type, pid, uid, cmd, version: int(t[4]!, 'version', 0, 1000) };
    case 'Ring': return { type, pid, uid, cmd, layout: int(t[4]!, 'layout', 0, 1000) };
    case 'Socket':
      return { type, pid, uid, cmd, family: int(t[4]!, 'family', 0, 65535), sockType: int(t[5]!, 'type', 0, 15),
        protocol: int(t[6]!, 'protocol', 0, 65535), fd: int(t[7]!, 'fd', 0, FD_MAX) };
    case 'Connect':
      return { type, pid, uid, cmd, fd: int(t[4]!, 'fd', 0, FD_MAX), address: address(t[5]!, 'address')!, sqos: t[6]!, gqos: t[7]! };
    case 'Bind': return { type, pid, uid, cmd, fd: int(t[4]!, 'fd', 0, FD_MAX), address: address(t[5]!, 'address')! };
    case 'Listen': return { type, pid, uid, cmd, fd: int(t[4]!, 'fd', 0, FD_MAX), backlog: int(t[5]!, 'backlog', -(2 ** 31), FD_MAX) };
    case 'Accept':
      return { type, pid, uid, cmd, fd: int(t[4]!, 'fd', 0, FD_MAX), address: address(t[5]!, 'address', true), newfd: int(t[6]!, 'newfd', 0, FD_MAX) };
    case 'SendTo': return { type, pid, uid, cmd, fd: int(t[4]!, 'fd', 0, FD_MAX), address: address(t[5]!, 'address')! };
    case 'SetSockOpt':
      return { type, pid, uid, cmd, fd: int(t[4]!, 'fd', 0, FD_MAX), level: int(t[5]!, 'level', 0, 65535),
        optname: int(t[6]!, 'optname', 0, 65535), value: int(t[7]!, 'value', -(2 ** 31), FD_MAX) };
    case 'Shutdown': return { type, pid, uid, cmd, fd: int(t[4]!, 'fd', 0, FD_MAX), how: int(t[5]!, 'how', 0, 2) };
    case 'Close': return { type, pid, uid, cmd, fd: int(t[4]!, 'fd', 0, FD_MAX) };
    case 'Cleanup': return { type, pid, uid, cmd };
  }
}

/** `Cached pid uid cmd generation Type args...`: a call the agent decided from its cache,
 * told so that the flow table stays whole. The inner call shares the header's pid/uid/cmd. */
function decodeCached(t: string[]): Message {
  if (t.length < 6) bad(`Cached takes Type pid uid cmd generation Type args..., got ${t.length} tokens`);
  if (!/^\d{1,16}$/.test(t[4]!)) bad(`generation is not an integer: ${JSON.stringify(t[4]!.slice(0, 40))}`);
  const generation = Number(t[4]);
  const type = t[5]!;
  if (!CACHEABLE.has(type as MessageType)) bad(`Cached cannot carry ${JSON.stringify(type.slice(0, 40))}`);
  const inner = decodeTokens([type, t[1]!, t[2]!, t[3]!, ...t.slice(6)]) as CacheableMessage;
  return { type: 'Cached', pid: inner.pid, uid: inner.uid, cmd: inner.cmd, generation, inner };
}

function addrList(a: SockAddr | null): string {
  return a ? formatList([String(a.family), a.host, String(a.port)]) : '';
}

/** The message's tokens as the paper's Tcl procedures receive them (type first). */
export function tokens(m: Message): string[] {
  const head = [m.type, String(m.pid), String(m.uid), m.cmd];
  switch (m.type) {
    case 'Startup': return [...head, String(m.version)];
    case 'Ring': return [...head, String(m.layout)];
    case 'Socket': return [...head, String(m.family), String(m.sockType), String(m.protocol), String(m.fd)];
    case 'Connect': return [...head, String(m.fd), addrList(m.address), m.sqos, m.gqos];
    case 'Bind': return [...head, String(m.fd), addrList(m.address)];
    case 'Listen': return [...head, String(m.fd), String(m.backlog)];
    case 'Accept': return [...head, String(m.fd), addrList(m.address), String(m.newfd)];
    case 'SendTo': return [...head, String(m.fd), addrList(m.address)];
    case 'SetSockOpt': return [...head, String(m.fd), String(m.level), String(m.optname), String(m.value)];
    case 'Shutdown': return [...head, String(m.fd), String(m.how)];
    case 'Close': return [...head, String(m.fd)];
    case 'Cleanup': return head;
    case 'Cached': return [...head, String(m.generation), ...tokens(m.inner).filter((_, i) => i === 0 || i > 3)];
  }
}

/** Encodes a message as a request line (without newline); decode(encode(m)) deep-equals m. */
export function encode(m: Message): string {
  return formatList(tokens(m));
}
