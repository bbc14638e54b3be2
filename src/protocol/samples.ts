/* Sample agent messages, one or more of every type, and replies of every kind: shared by the
 * codec tests, the test of the C codec against them, and the daemon's socket fuzzing (which
 * mutates the messages). */

import { ERRNO_NAMES } from '../policy/dscp.js';
import type { Message } from './messages.js';
import type { Reply } from './replies.js';

export const SAMPLE_MESSAGES: readonly Message[] = [
  { type: 'Startup', pid: 10, uid: 0, cmd: 'curl -s http://x', version: 1 },
  { type: 'Ring', pid: 10, uid: 0, cmd: 'curl -s http://x', layout: 1 },
  { type: 'Socket', pid: 10, uid: 1000, cmd: '"C:\\Program Files\\NetMeetingNT\\conf.exe" ', family: 2, sockType: 2, protocol: 0, fd: 5 },
  { type: 'Connect', pid: 10, uid: 0, cmd: 'a', fd: 5, address: { family: 2, host: '199.2.53.102', port: 80 }, sqos: '', gqos: '' },
  { type: 'Connect', pid: 10, uid: 0, cmd: 'a', fd: 5, address: { family: 10, host: '2001:db8::1', port: 443 }, sqos: '', gqos: '' },
  { type: 'Bind', pid: 10, uid: 0, cmd: 'a', fd: 3, address: { family: 10, host: '::', port: 0 } },
  { type: 'Listen', pid: 10, uid: 0, cmd: 'a', fd: 3, backlog: 128 },
  { type: 'Accept', pid: 10, uid: 0, cmd: 'a', fd: 3, address: { family: 2, host: '10.0.0.1', port: 5555 }, newfd: 7 },
  { type: 'Accept', pid: 10, uid: 0, cmd: 'a', fd: 3, address: null, newfd: 7 },
  { type: 'SendTo', pid: 10, uid: 0, cmd: 'a', fd: 4, address: { family: 2, host: '192.0.2.9', port: 5004 } },
  { type: 'SetSockOpt', pid: 10, uid: 0, cmd: 'a', fd: 4, level: 0, optname: 1, value: 184 },
  { type: 'Shutdown', pid: 10, uid: 0, cmd: 'a', fd: 4, how: 1 },
  { type: 'Close', pid: 10, uid: 0, cmd: 'a', fd: 4 },
  { type: 'Cleanup', pid: 10, uid: 0, cmd: 'a' },
  { type: 'Cached', pid: 10, uid: 0, cmd: 'a b', generation: 1795287232097000,
    inner: { type: 'Connect', pid: 10, uid: 0, cmd: 'a b', fd: 5, address: { family: 2, host: '192.0.2.1', port: 80 }, sqos: '', gqos: '' } },
  { type: 'Cached', pid: 10, uid: 0, cmd: 'a', generation: 7, inner: { type: 'Socket', pid: 10, uid: 0, cmd: 'a', family: 10, sockType: 2, protocol: 0, fd: 9 } },
];

/** Every reply the daemon sends, one of each kind and every value of each directive. */
export function everyReply(): Reply[] {
  const out: Reply[] = [{ decision: null }, { version: 1 }, { ring: 0 }, { ring: 1024 }, { error: { code: 'QOS_ERR_PROTOCOL', text: 'Socket takes 8 tokens {x} "y" \\z é' } }, { error: { code: 'QOS_ERR_MESSAGE_TOO_LONG', text: '' } }];
  for (let dscp = 0; dscp < 64; dscp++) out.push({ decision: { dscp } }, { decision: { dscp, override: true }, cache: 7 });
  for (let tos = 0; tos < 256; tos += 3) out.push({ decision: { tos } });
  for (let priority = 0; priority < 8; priority++) out.push({ decision: { priority } }, { decision: { dscp: 46, priority }, cache: 1795287232097000 });
  for (const deny of ERRNO_NAMES) out.push({ decision: { deny } }, { decision: { deny }, cache: 2 });
  out.push({ decision: { override: true } }, { decision: { override: true, tos: 184, priority: 6 } }, { decision: null, cache: 1 },
    { decision: null, cache: Number.MAX_SAFE_INTEGER }, { decision: { tos: 0, priority: 0 }, cache: 9_999_999 });
  return out;
}

/** Lines the agent ignores in full: decodeReply refuses each (and the C agent gives no decision: src/agent/codec.test.ts). */
export const MALFORMED_REPLIES = [
  'DSCP', 'DSCP 64', 'DSCP EF', 'DSCP -1', 'DSCP +1', 'DSCP 1x', 'DSCP 0034', 'TOS 256', 'TOS', 'PRIORITY 8',
  'PRIORITY -0', 'DENY', 'DENY ENOENT', 'DENY eperm', 'CACHE 0', 'CACHE', 'CACHE -1', 'CACHE 9007199254740992',
  'CACHE 12345678901234567', 'OVERRIDE BOGUS', 'dscp 1', 'VERSION', 'VERSION x', 'RING', 'RING -1', 'RING 1234567', 'ERROR', 'ERROR QOS_ERR_PROTOCOL {a',
  'DSCP 1 DSCP', '\u00e9',
];
