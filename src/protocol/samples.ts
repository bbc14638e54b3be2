/* Sample agent messages, one or more of every type: shared by the codec tests and the
 * daemon's socket fuzzing (which mutates them). */

import type { Message } from './messages.js';

export const SAMPLE_MESSAGES: readonly Message[] = [
  { type: 'Startup', pid: 10, uid: 0, cmd: 'curl -s http://x', version: 1 },
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
