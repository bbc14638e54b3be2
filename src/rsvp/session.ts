/* SESSION (RFC 2205 appendix A.1): the destination of the data flow, its IP protocol, flags and
 * destination port; c-type 1 for IPv4, 2 for IPv6 (chosen by the address). */

import { CLASS, objectCodec, unknownCType } from './object.js';
import { addressLength, familyCType } from './wire.js';

export interface Session {
  kind: 'SESSION';
  destination: string;
  /** IP protocol id (17 UDP, 6 TCP) */
  protocol: number;
  /** 0x01 E_Police: police at the edge of the RSVP cloud */
  flags: number;
  port: number;
}

export const SESSION_E_POLICE = 0x01;

export const session = objectCodec<Session>({
  name: 'SESSION',
  classNum: CLASS.SESSION,
  cType: (v) => familyCType(v.destination),
  bodyLength: (v) => addressLength(v.destination) + 4,
  write(v, w) {
    w.address(v.destination, 'destination');
    w.u8(v.protocol, 'protocol'); w.u8(v.flags, 'flags'); w.u16(v.port, 'port');
  },
  read(r, cType) {
    if (cType !== 1 && cType !== 2) unknownCType(r, cType);
    const destination = r.address(cType, 'destination');
    return { kind: 'SESSION', destination, protocol: r.u8('protocol'), flags: r.u8('flags'), port: r.u16('port') };
  },
});
