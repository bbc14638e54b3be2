/* ERROR_SPEC (RFC 2205 appendix A.5): the node that found the error, flags (InPlace 0x01,
 * NotGuilty 0x02), the error code and value (appendix B); c-type 1 IPv4, 2 IPv6. */

import { CLASS, objectCodec, unknownCType } from './object.js';
import { addressLength, familyCType } from './wire.js';

export interface ErrorSpec {
  kind: 'ERROR_SPEC';
  node: string;
  flags: number;
  code: number;
  value: number;
}

export const ERROR_IN_PLACE = 0x01;
export const ERROR_NOT_GUILTY = 0x02;
/** Error codes of RFC 2205 appendix B that the decoder's own checks correspond to. */
export const ERROR_CODES = { CONFIRMATION: 0, ADMISSION: 1, POLICY: 2, NO_PATH: 3, NO_SENDER: 4, CONFLICTING_STYLE: 5, UNKNOWN_STYLE: 6, CONFLICTING_PORTS: 7, CONFLICTING_SENDER_PORTS: 8, PREEMPTED: 12, UNKNOWN_CLASS: 13, UNKNOWN_CTYPE: 14, API: 20, TRAFFIC_CONTROL: 21, TRAFFIC_CONTROL_SYSTEM: 22, RSVP_SYSTEM: 23 } as const;

export const errorSpec = objectCodec<ErrorSpec>({
  name: 'ERROR_SPEC',
  classNum: CLASS.ERROR_SPEC,
  cType: (v) => familyCType(v.node),
  bodyLength: (v) => addressLength(v.node) + 4,
  write(v, w) {
    w.address(v.node, 'error node');
    w.u8(v.flags, 'flags'); w.u8(v.code, 'error code'); w.u16(v.value, 'error value');
  },
  read(r, cType) {
    if (cType !== 1 && cType !== 2) unknownCType(r, cType);
    const node = r.address(cType, 'error node');
    return { kind: 'ERROR_SPEC', node, flags: r.u8('flags'), code: r.u8('error code'), value: r.u16('error value') };
  },
});
