/* RSVP_HOP (RFC 2205 appendix A.2): PHOP in downstream messages, NHOP in upstream ones; the
 * address of the node that sent the message and its logical interface handle (LIH). */

import { CLASS, objectCodec, unknownCType } from './object.js';
import { addressLength, familyCType } from './wire.js';

export interface Hop {
  kind: 'RSVP_HOP';
  address: string;
  /** logical interface handle */
  lih: number;
}

export const hop = objectCodec<Hop>({
  name: 'RSVP_HOP',
  classNum: CLASS.RSVP_HOP,
  cType: (v) => familyCType(v.address),
  bodyLength: (v) => addressLength(v.address) + 4,
  write(v, w) {
    w.address(v.address, 'address');
    w.u32(v.lih, 'logical interface handle');
  },
  read(r, cType) {
    if (cType !== 1 && cType !== 2) unknownCType(r, cType);
    const address = r.address(cType, 'address');
    return { kind: 'RSVP_HOP', address, lih: r.u32('logical interface handle') };
  },
});
