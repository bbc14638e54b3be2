/* FILTER_SPEC and SENDER_TEMPLATE (RFC 2205 appendix A.9 and A.10): one sender, by source
 * address and source port; c-type 1 IPv4, 2 IPv6 (the flow-label c-type 3 is not supported).
 * The two classes share their format. */

import { CLASS, objectCodec, type ObjectCodec, unknownCType } from './object.js';
import { addressLength, familyCType } from './wire.js';

export interface FilterSpec { kind: 'FILTER_SPEC'; source: string; port: number }
export interface SenderTemplate { kind: 'SENDER_TEMPLATE'; source: string; port: number }

function senderCodec<K extends 'FILTER_SPEC' | 'SENDER_TEMPLATE'>(kind: K, classNum: number): ObjectCodec<{ kind: K; source: string; port: number }> {
  return objectCodec({
    name: kind,
    classNum,
    cType: (v) => familyCType(v.source),
    bodyLength: (v) => addressLength(v.source) + 4,
    write(v, w) {
      w.address(v.source, 'source');
      w.zero(2); w.u16(v.port, 'source port');
    },
    read(r, cType) {
      if (cType !== 1 && cType !== 2) unknownCType(r, cType);
      const source = r.address(cType, 'source');
      r.skip(2, 'unused');
      return { kind, source, port: r.u16('source port') };
    },
  });
}

export const filterSpec: ObjectCodec<FilterSpec> = senderCodec('FILTER_SPEC', CLASS.FILTER_SPEC);
export const senderTemplate: ObjectCodec<SenderTemplate> = senderCodec('SENDER_TEMPLATE', CLASS.SENDER_TEMPLATE);
