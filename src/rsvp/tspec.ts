/* SENDER_TSPEC (RFC 2210 section 3.1, c-type 2): the sender's traffic as a token bucket, under
 * the general-parameters service header (service 1). */

import { expectServiceHeader, readTokenBucket, readVersion, SERVICE_GENERAL, type TokenBucket, writeServiceHeader, writeTokenBucket, writeVersion } from './intserv.js';
import { CLASS, objectCodec, unknownCType } from './object.js';

export interface SenderTspec extends TokenBucket { kind: 'SENDER_TSPEC' }

export const senderTspec = objectCodec<SenderTspec>({
  name: 'SENDER_TSPEC',
  classNum: CLASS.SENDER_TSPEC,
  cType: () => 2,
  bodyLength: () => 32,
  write(v, w) {
    writeVersion(w, 7);
    writeServiceHeader(w, SERVICE_GENERAL, false, 6);
    writeTokenBucket(w, v);
  },
  read(r, cType) {
    if (cType !== 2) unknownCType(r, cType);
    readVersion(r);
    expectServiceHeader(r, SERVICE_GENERAL, 6, 'general parameters');
    const t = readTokenBucket(r);
    return { kind: 'SENDER_TSPEC', r: t.r, b: t.b, p: t.p, m: t.m, M: t.M };
  },
});
