/* SCOPE (RFC 2205 appendix A.6): the senders a wildcard-style message is for, a list of IPv4
 * (c-type 1) or IPv6 (c-type 2) addresses, at least one, all of one family. */

import { CLASS, objectCodec, unknownCType } from './object.js';
import { decodeError, invalid, isIPv6Text } from './wire.js';

export interface Scope { kind: 'SCOPE'; senders: string[] }

const six = (v: Scope) => v.senders.length > 0 && isIPv6Text(v.senders[0]!);

export const scope = objectCodec<Scope>({
  name: 'SCOPE',
  classNum: CLASS.SCOPE,
  cType: (v) => (six(v) ? 2 : 1),
  bodyLength: (v) => v.senders.length * (six(v) ? 16 : 4),
  write(v, w) {
    if (!v.senders.length) invalid('SCOPE', 'no senders (at least one address)');
    for (const [i, a] of v.senders.entries()) {
      if (isIPv6Text(a) !== six(v)) invalid('SCOPE', `sender ${i} "${a}" is not of the first one's family`);
      w.address(a, `sender ${i}`);
    }
  },
  read(r, cType) {
    if (cType !== 1 && cType !== 2) unknownCType(r, cType);
    const size = cType === 1 ? 4 : 16;
    if (r.left === 0 || r.left % size) decodeError('SCOPE', r.pos, `${r.left} bytes is not a list of ${size}-byte addresses`);
    const senders: string[] = [];
    while (r.left) senders.push(r.address(cType, `sender ${senders.length}`));
    return { kind: 'SCOPE', senders };
  },
});
