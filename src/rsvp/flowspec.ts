/* FLOWSPEC (RFC 2210 section 3.2, c-type 2): a reservation request for Controlled Load (service
 * 5, RFC 2211: a token bucket TSpec) or Guaranteed Service (service 2, RFC 2212: the TSpec and
 * the RSpec, parameter 130, rate R as a float and slack term S in microseconds). */

import { expectParam, expectServiceHeader, PARAM_GS_RSPEC, readServiceHeader, readTokenBucket, readVersion, SERVICE_CL, SERVICE_GS, type TokenBucket, writeParamHeader, writeServiceHeader, writeTokenBucket, writeVersion } from './intserv.js';
import { CLASS, objectCodec, unknownCType } from './object.js';
import { decodeError, invalid } from './wire.js';

export type Flowspec =
  | { kind: 'FLOWSPEC'; service: 'CL'; tspec: TokenBucket }
  | { kind: 'FLOWSPEC'; service: 'GS'; tspec: TokenBucket; /** rate, bytes/s */ R: number; /** slack term, microseconds */ S: number };

export const flowspec = objectCodec<Flowspec>({
  name: 'FLOWSPEC',
  classNum: CLASS.FLOWSPEC,
  cType: () => 2,
  bodyLength: (v) => (v.service === 'GS' ? 44 : 32),
  write(v, w) {
    if (v.service === 'CL') {
      writeVersion(w, 7);
      writeServiceHeader(w, SERVICE_CL, false, 6);
      writeTokenBucket(w, v.tspec);
    } else if (v.service === 'GS') {
      writeVersion(w, 10);
      writeServiceHeader(w, SERVICE_GS, false, 9);
      writeTokenBucket(w, v.tspec);
      writeParamHeader(w, PARAM_GS_RSPEC, 2);
      w.f32(v.R, 'rate R'); w.u32(v.S, 'slack term S');
    } else invalid('FLOWSPEC', `service ${String((v as { service: unknown }).service)} (CL or GS)`);
  },
  read(r, cType) {
    if (cType !== 2) unknownCType(r, cType);
    readVersion(r);
    const h = readServiceHeader(r);
    if (h.service === SERVICE_CL) {
      r.pos = h.at; expectServiceHeader(r, SERVICE_CL, 6, 'Controlled Load');
      return { kind: 'FLOWSPEC', service: 'CL', tspec: readTokenBucket(r) };
    }
    if (h.service === SERVICE_GS) {
      r.pos = h.at; expectServiceHeader(r, SERVICE_GS, 9, 'Guaranteed Service');
      const tspec = readTokenBucket(r);
      expectParam(r, PARAM_GS_RSPEC, 2);
      return { kind: 'FLOWSPEC', service: 'GS', tspec, R: r.f32('rate R'), S: r.u32('slack term S') };
    }
    return decodeError('FLOWSPEC', h.at, `service ${h.service} (5 Controlled Load or 2 Guaranteed)`);
  },
});
