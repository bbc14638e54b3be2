/* STYLE (RFC 2205 appendix A.7): the reservation style as an option vector of 24 bits, of which
 * sharing control (bits 4-3: 01 distinct, 10 shared) and sender selection (bits 2-0: 001
 * wildcard, 010 explicit) are defined: WF = shared + wildcard, FF = distinct + explicit, SE =
 * shared + explicit. The fourth combination, distinct + wildcard, is undefined (section 3.1.5). */

import { CLASS, objectCodec, unknownCType } from './object.js';
import { decodeError, invalid } from './wire.js';

export type StyleName = 'WF' | 'FF' | 'SE';

export interface Style {
  kind: 'STYLE';
  /** the flags byte (none defined; kept as received) */
  flags: number;
  style: StyleName;
}

export const STYLE_VECTORS: Record<StyleName, number> = { WF: 0b10001, FF: 0b01010, SE: 0b10010 };

export const style = objectCodec<Style>({
  name: 'STYLE',
  classNum: CLASS.STYLE,
  cType: () => 1,
  bodyLength: () => 4,
  write(v, w) {
    w.u8(v.flags, 'flags');
    const vector = STYLE_VECTORS[v.style];
    if (vector === undefined) invalid('STYLE', `style ${JSON.stringify(v.style)} (WF, FF or SE)`);
    w.u8(0, 'option vector'); w.u16(vector, 'option vector');
  },
  read(r, cType) {
    if (cType !== 1) unknownCType(r, cType);
    const flags = r.u8('flags');
    const at = r.pos;
    const vector = (r.u8('option vector') << 16) | r.u16('option vector');
    const name = (Object.keys(STYLE_VECTORS) as StyleName[]).find((k) => STYLE_VECTORS[k] === vector);
    if (!name) decodeError('STYLE', at, `option vector 0x${vector.toString(16).padStart(6, '0')} is not WF (0x000011), FF (0x00000a) or SE (0x000012)`);
    return { kind: 'STYLE', flags, style: name };
  },
});
