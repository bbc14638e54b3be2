/* ADSPEC (RFC 2210 section 3.3, c-type 2): what the path offers, composed hop by hop: the
 * default general parameters fragment (IS hop count, path bandwidth estimate, minimum path
 * latency, composed MTU), then the Guaranteed Service fragment (error terms Ctot, Dtot, Csum,
 * Dsum; RFC 2212) and the Controlled Load fragment (RFC 2211), each with its break bit: a node
 * on the path that does not support the service sets it. A service fragment may be empty (a
 * break, no data). General-parameter overrides inside a service fragment are not supported. */

import { expectParam, readServiceHeader, readVersion, SERVICE_CL, SERVICE_GENERAL, SERVICE_GS, writeParamHeader, writeServiceHeader, writeVersion } from './intserv.js';
import { CLASS, objectCodec, unknownCType } from './object.js';
import { decodeError, type Reader } from './wire.js';

export interface AdspecGeneral {
  breakBit: boolean;
  /** parameter 4: IS hop count */
  hopCount: number;
  /** parameter 6: path bandwidth estimate, bytes/s */
  pathBw: number;
  /** parameter 8: minimum path latency, microseconds (0xffffffff: indeterminate) */
  minLatency: number;
  /** parameter 10: composed path MTU, bytes */
  mtu: number;
}

/** RFC 2212 section 6: the error terms, parameters 133 to 136. */
export interface GsTerms { ctot: number; dtot: number; csum: number; dsum: number }

export interface Adspec {
  kind: 'ADSPEC';
  general: AdspecGeneral;
  /** the GS fragment; terms null for an empty fragment */
  gs?: { breakBit: boolean; terms: GsTerms | null };
  /** the CL fragment (no data of its own) */
  cl?: { breakBit: boolean };
}

/** The error terms' parameter ids, in the order they are sent. */
const GS_PARAMS: Record<keyof GsTerms, number> = { ctot: 133, dtot: 134, csum: 135, dsum: 136 };

const words = (v: Adspec) => 9 + (v.gs ? 1 + (v.gs.terms ? 8 : 0) : 0) + (v.cl ? 1 : 0);

function readGeneral(r: Reader, breakBit: boolean): AdspecGeneral {
  expectParam(r, 4, 1); const hopCount = r.u32('IS hop count');
  expectParam(r, 6, 1); const pathBw = r.f32('path bandwidth estimate');
  expectParam(r, 8, 1); const minLatency = r.u32('minimum path latency');
  expectParam(r, 10, 1); const mtu = r.u32('composed MTU');
  return { breakBit, hopCount, pathBw, minLatency, mtu };
}

export const adspec = objectCodec<Adspec>({
  name: 'ADSPEC',
  classNum: CLASS.ADSPEC,
  cType: () => 2,
  bodyLength: (v) => 4 * (words(v) + 1),
  write(v, w) {
    writeVersion(w, words(v));
    const g = v.general;
    writeServiceHeader(w, SERVICE_GENERAL, g.breakBit, 8);
    writeParamHeader(w, 4, 1); w.u32(g.hopCount, 'IS hop count');
    writeParamHeader(w, 6, 1); w.f32(g.pathBw, 'path bandwidth estimate');
    writeParamHeader(w, 8, 1); w.u32(g.minLatency, 'minimum path latency');
    writeParamHeader(w, 10, 1); w.u32(g.mtu, 'composed MTU');
    if (v.gs) {
      const t = v.gs.terms;
      writeServiceHeader(w, SERVICE_GS, v.gs.breakBit, t ? 8 : 0);
      if (t) { // the four terms by name, not by a loop over their keys (a keyed load each)
        writeParamHeader(w, GS_PARAMS.ctot, 1); w.u32(t.ctot, 'ctot');
        writeParamHeader(w, GS_PARAMS.dtot, 1); w.u32(t.dtot, 'dtot');
        writeParamHeader(w, GS_PARAMS.csum, 1); w.u32(t.csum, 'csum');
        writeParamHeader(w, GS_PARAMS.dsum, 1); w.u32(t.dsum, 'dsum');
      }
    }
    if (v.cl) writeServiceHeader(w, SERVICE_CL, v.cl.breakBit, 0);
  },
  read(r, cType) {
    if (cType !== 2) unknownCType(r, cType);
    readVersion(r);
    const gh = readServiceHeader(r);
    if (gh.service !== SERVICE_GENERAL || gh.words !== 8) decodeError('ADSPEC', gh.at, `first fragment is service ${gh.service} of ${gh.words} words, expected the default general parameters (service 1, 8 words)`);
    const out: Adspec = { kind: 'ADSPEC', general: readGeneral(r, gh.breakBit) };
    while (r.left) {
      const h = readServiceHeader(r);
      if (h.service === SERVICE_GS && !out.gs && !out.cl) {
        if (h.words === 0) { out.gs = { breakBit: h.breakBit, terms: null }; continue; }
        if (h.words !== 8) decodeError('ADSPEC', h.at + 2, `Guaranteed Service fragment of ${h.words} words (0 or 8: overrides are not supported)`);
        const term = (k: keyof GsTerms) => { expectParam(r, GS_PARAMS[k], 1); return r.u32(k); };
        // one object literal, fields in the order sent, rather than a field at a time
        out.gs = { breakBit: h.breakBit, terms: { ctot: term('ctot'), dtot: term('dtot'), csum: term('csum'), dsum: term('dsum') } };
      } else if (h.service === SERVICE_CL && !out.cl) {
        if (h.words !== 0) decodeError('ADSPEC', h.at + 2, `Controlled Load fragment of ${h.words} words (0: overrides are not supported)`);
        out.cl = { breakBit: h.breakBit };
      } else decodeError('ADSPEC', h.at, `fragment of service ${h.service} where only Guaranteed (2) then Controlled Load (5) may follow, once each`);
    }
    return out;
  },
});
