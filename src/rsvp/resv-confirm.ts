/* RESV_CONFIRM (RFC 2205 appendix A.11): the receiver that asked for a ResvConf; c-type 1 IPv4,
 * 2 IPv6. */

import { CLASS, objectCodec, unknownCType } from './object.js';
import { addressLength, familyCType } from './wire.js';

export interface ResvConfirm { kind: 'RESV_CONFIRM'; receiver: string }

export const resvConfirm = objectCodec<ResvConfirm>({
  name: 'RESV_CONFIRM',
  classNum: CLASS.RESV_CONFIRM,
  cType: (v) => familyCType(v.receiver),
  bodyLength: (v) => addressLength(v.receiver),
  write(v, w) { w.address(v.receiver, 'receiver'); },
  read(r, cType) {
    if (cType !== 1 && cType !== 2) unknownCType(r, cType);
    return { kind: 'RESV_CONFIRM', receiver: r.address(cType, 'receiver') };
  },
});
