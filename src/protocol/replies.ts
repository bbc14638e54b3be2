/* Agent protocol replies (docs/protocol.md "Replies"): one line per request, with the directives
 * a decision renders to and whether the agent may reuse them (CACHE gen), the version answer to
 * Startup, or the ERROR a malformed request gets. encodeReply is on the daemon's hot path;
 * decodeReply is the grammar the agent's C parser (agent/msg.c) accepts, which
 * src/agent/codec.test.ts holds it to. */

import { QosError } from '../errors.js';
import type { Decision } from '../policy/engine.js';
import { ERRNO_NAMES } from '../policy/dscp.js';
import { PROTOCOL_VERSION } from './messages.js';
import { formatList, parseList } from './tcl-list.js';

/** A reply line as the agent reads it: a decision (null: leave the socket alone) with the
 * generation it may be reused under, the daemon's protocol version, the slots of the
 * notification ring passed with it (0: none), or an error. */
export type Reply =
  | { decision: Decision | null; cache?: number }
  | { version: number }
  | { ring: number }
  | { error: { code: string; text: string } };

/** Renders a decision as a reply line (without newline), with ` CACHE gen` when cache > 0:
 * the agent may reuse it for the same call while the daemon publishes that generation. Empty
 * for "leave it alone". */
export function encodeReply(d: Decision | null | undefined, cache = 0): string {
  let s = '';
  if (d) {
    if (d.deny) s = `DENY ${d.deny}`;
    else {
      if (d.override) s = 'OVERRIDE';
      if (d.tos !== undefined) s = s ? `${s} TOS ${d.tos}` : `TOS ${d.tos}`;
      else if (d.dscp !== undefined) s = s ? `${s} DSCP ${d.dscp}` : `DSCP ${d.dscp}`;
      if (d.priority !== undefined) s = s ? `${s} PRIORITY ${d.priority}` : `PRIORITY ${d.priority}`;
    }
  }
  if (cache > 0) s = s ? `${s} CACHE ${cache}` : `CACHE ${cache}`;
  return s;
}

/** Renders any reply as its line (without newline): decodeReply's inverse. */
export function encodeAnyReply(r: Reply): string {
  if ('version' in r) return `VERSION ${r.version}`;
  if ('ring' in r) return `RING ${r.ring}`;
  if ('error' in r) return `ERROR ${r.error.code} ${formatList([r.error.text])}`;
  return encodeReply(r.decision, r.cache);
}

/** The reply to Startup: the daemon's protocol version. */
export function encodeVersion(): string {
  return encodeAnyReply({ version: PROTOCOL_VERSION });
}

/** The reply to Ring: the slots of the ring passed with it (ring.ts), 0 for none. */
export function encodeRing(slots: number): string {
  return encodeAnyReply({ ring: slots });
}

/** The reply to a message that could not be decoded: the agent treats it as no decision. */
export function encodeError(err: QosError): string {
  return encodeAnyReply({ error: { code: err.code, text: err.message.slice(0, 200) } });
}

function bad(line: string, why: string): never {
  throw new QosError('QOS_ERR_PROTOCOL', `reply ${JSON.stringify(line.slice(0, 80))}: ${why}`);
}

/** A decimal number of at most `digits` digits in [min, max], else bad. */
function num(line: string, s: string | undefined, name: string, min: number, max: number, digits = 3): number {
  if (s === undefined || s.length > digits || !/^\d+$/.test(s)) bad(line, `${name} takes a number`);
  const v = Number(s);
  if (v < min || v > max) bad(line, `${name} out of range [${min}, ${max}]`);
  return v;
}

const VERSION = /^VERSION (\d{1,9})$/;
const RING = /^RING (\d{1,6})$/;
const ERROR = /^ERROR (QOS_ERR_[A-Z_]+) (.*)$/s;

/** Decodes one reply line (without its newline) as the agent reads it: directives separated by
 * spaces, tabs or carriage returns, a later mark replacing an earlier one. Throws
 * QosError(QOS_ERR_PROTOCOL) on anything the agent would ignore in full. */
export function decodeReply(line: string): Reply {
  const v = VERSION.exec(line);
  if (v) return { version: Number(v[1]) };
  const r = RING.exec(line);
  if (r) return { ring: Number(r[1]) };
  const e = ERROR.exec(line);
  if (e) {
    const text = parseList(e[2]!);
    if (text.length !== 1) bad(line, 'ERROR takes a code and one text');
    return { error: { code: e[1]!, text: text[0]! } };
  }
  let d: Decision | null = null;
  let cache = 0;
  const t = line.split(/[ \t\r]+/);
  for (let i = 0; i < t.length; i++) {
    const tok = t[i]!;
    if (tok === '') continue;
    if (tok === 'OVERRIDE') { (d ??= {}).override = true; continue; }
    const arg = t[++i];
    switch (tok) {
      case 'TOS': d ??= {}; delete d.dscp; d.tos = num(line, arg, 'TOS', 0, 255); break;
      case 'DSCP': d ??= {}; delete d.tos; d.dscp = num(line, arg, 'DSCP', 0, 63); break;
      case 'PRIORITY': (d ??= {}).priority = num(line, arg, 'PRIORITY', 0, 7); break;
      case 'CACHE': cache = num(line, arg, 'CACHE', 1, Number.MAX_SAFE_INTEGER, 16); break;
      case 'DENY':
        if (arg === undefined || !ERRNO_NAMES.includes(arg)) bad(line, `DENY takes an errno name (${ERRNO_NAMES.join(', ')})`);
        (d ??= {}).deny = arg;
        break;
      default: bad(line, `unknown directive ${JSON.stringify(tok.slice(0, 40))}`);
    }
  }
  return cache ? { decision: d, cache } : { decision: d };
}

/** The reply codec, for assertRoundTrip (roundtrip.ts). */
export const replyCodec = { encode: encodeAnyReply, decode: decodeReply };
