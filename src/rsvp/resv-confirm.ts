/* RESV_CONFIRM (RFC 2205 appendix A.11): the receiver that asked for a ResvConf; c-type 1 IPv4,
 * 2 IPv6. */

import { CLASS, objectCodec, unknownCType } from './object.js';
import { isIPv6Text } from './wire.js';

export interface ResvConfirm { kind: 'RESV_CONFIRM'; receiver: string }

export const resvConfirm = objectCodec<ResvConfirm>({
  name: 'RESV_CONFIRM',
  classNum: CLASS.RESV_CONFIRM,
  cType: (v) => (isIPv6Text(v.receiver) ? 2 : 1),
  bodyLength: (v) => (isIPv6Text(v.receiver) ? 16 : 4),
  write(v, w) { if (isIPv6Text(v.receiver)) w.ipv6(v.receiver, 'receiver'); else w.ipv4(v.receiver, 'receiver'); },
  read(r, cType) {
    if (cType !== 1 && cType !== 2) unknownCType(r, cType);
    return { kind: 'RESV_CONFIRM', receiver: cType === 1 ? r.ipv4('receiver') : r.ipv6('receiver') };
  },
});
