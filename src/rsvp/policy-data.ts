/* POLICY_DATA (RFC 2750 section 3.1, c-type 1): a data offset, an option list (kept as bytes)
 * and policy elements (length, P-type, data; each a multiple of 4 bytes). The identity elements
 * of RFC 3182 are decoded: AUTH_USER (P-type 2) and AUTH_APP (P-type 3), each a list of
 * attributes (length without padding, A-type, sub-type, value padded to 4 bytes). Text
 * sub-types (the ASCII and Unicode DN and ID forms) are strings; the rest are hex. */

import { CLASS, objectCodec, unknownCType } from './object.js';
import { decodeError, invalid, type Reader, type Writer } from './wire.js';

export const P_AUTH_USER = 2;
export const P_AUTH_APP = 3;
/** A-types (RFC 3182 section 3.3). */
export const A_TYPE = { POLICY_LOCATOR: 1, CREDENTIAL: 2, DIGITAL_SIGNATURE: 3, POLICY_ERROR_OBJECT: 4 } as const;
/** Sub-types whose value is text: POLICY_LOCATOR ASCII_DN 1, UNICODE_DN 2; CREDENTIAL ASCII_ID 1, UNICODE_ID 2. */
const isText = (aType: number, subType: number) => (aType === 1 || aType === 2) && (subType === 1 || subType === 2);

export type IdentityAttribute = { aType: number; subType: number; text: string } | { aType: number; subType: number; hex: string };

export type PolicyElement =
  | { pType: typeof P_AUTH_USER | typeof P_AUTH_APP; attributes: IdentityAttribute[] }
  | { pType: number; data: string };

export interface PolicyData {
  kind: 'POLICY_DATA';
  /** the option list's bytes, hex ('' for none) */
  options: string;
  elements: PolicyElement[];
}

const pad4 = (n: number) => (n + 3) & ~3;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }); // a BOM is kept: the bytes encode back the same

/** Bytes of an attribute's value (text as UTF-8), which must be text or hex as its sub-type says. */
function attrLength(a: IdentityAttribute): number {
  if ('text' in a) {
    if (!isText(a.aType, a.subType)) invalid('POLICY_DATA', `attribute ${a.aType}/${a.subType} is not a text sub-type: give hex`);
    return Buffer.byteLength(a.text, 'utf8');
  }
  if (isText(a.aType, a.subType)) invalid('POLICY_DATA', `attribute ${a.aType}/${a.subType} is text: give text`);
  return hexLength(a.hex, 'attribute value');
}

/** Bytes of lower-case hex text. */
function hexLength(s: string, field: string): number {
  if (s === '') return 0; // no option list, the usual case: no pattern to run
  if (typeof s !== 'string' || !/^([0-9a-f]{2})*$/.test(s)) invalid('POLICY_DATA', `${field} "${s}" is not lower-case hex`);
  return s.length / 2;
}

function writeHex(w: Writer, s: string, field: string): void {
  if (hexLength(s, field)) w.bytes(Buffer.from(s, 'hex'));
}

const isIdentity = (e: PolicyElement): e is Extract<PolicyElement, { attributes: IdentityAttribute[] }> => 'attributes' in e;

function elementLength(e: PolicyElement): number {
  if (isIdentity(e)) return 4 + e.attributes.reduce((n, a) => n + pad4(4 + attrLength(a)), 0);
  const n = hexLength(e.data, 'element data');
  if (n % 4) invalid('POLICY_DATA', `element data of ${n} bytes (a multiple of 4)`);
  return 4 + n;
}

function writeElement(e: PolicyElement, w: Writer): void {
  if (!isIdentity(e)) { w.u16(elementLength(e), 'element length'); w.u16(e.pType, 'P-type'); writeHex(w, e.data, 'element data'); return; }
  // the element's length goes in once its attributes are written: each attribute's length is worked out once
  const at = w.pos;
  w.zero(2); w.u16(e.pType, 'P-type');
  if (e.pType !== P_AUTH_USER && e.pType !== P_AUTH_APP) invalid('POLICY_DATA', `P-type ${e.pType} with attributes: only AUTH_USER (2) and AUTH_APP (3) have them`);
  for (const a of e.attributes) {
    const n = attrLength(a);
    w.u16(4 + n, 'attribute length'); w.u8(a.aType, 'A-type'); w.u8(a.subType, 'sub-type');
    if ('text' in a) w.utf8(a.text, n); else writeHex(w, a.hex, 'attribute value');
    w.zero(pad4(n) - n);
  }
  w.u16At(at, w.pos - at, 'element length');
}

function readElement(r: Reader): PolicyElement {
  const at = r.pos;
  const len = r.u16('element length');
  const pType = r.u16('P-type');
  if (len < 4 || len % 4 || len - 4 > r.left) decodeError('POLICY_DATA', at, `policy element length ${len} (a multiple of 4, at least 4, within the object's ${r.left + 4} bytes left)`);
  const end = r.pos + len - 4;
  if (pType !== P_AUTH_USER && pType !== P_AUTH_APP) return { pType, data: r.hex(len - 4, 'element data') };
  const attributes: IdentityAttribute[] = [];
  while (r.pos < end) {
    const aat = r.pos;
    const alen = r.u16('attribute length');
    const aType = r.u8('A-type'), subType = r.u8('sub-type');
    if (alen < 4 || pad4(alen) > end - aat) decodeError('POLICY_DATA', aat, `identity attribute length ${alen} (at least 4, within its element's ${end - aat} bytes)`);
    let attribute: IdentityAttribute;
    if (isText(aType, subType)) {
      const value = r.view(alen - 4, 'attribute value');
      let text: string;
      try { text = utf8.decode(value); } catch { decodeError('POLICY_DATA', aat + 4, `attribute ${aType}/${subType} is text, but not UTF-8`); }
      attribute = { aType, subType, text };
    } else attribute = { aType, subType, hex: r.hex(alen - 4, 'attribute value') };
    r.skip(pad4(alen) - alen, 'padding');
    attributes.push(attribute);
  }
  return { pType, attributes };
}

export const policyData = objectCodec<PolicyData>({
  name: 'POLICY_DATA',
  classNum: CLASS.POLICY_DATA,
  cType: () => 1,
  bodyLength: (v) => 4 + hexLength(v.options, 'options') + v.elements.reduce((n, e) => n + elementLength(e), 0),
  write(v, w) {
    const options = hexLength(v.options, 'options');
    if (options % 4) invalid('POLICY_DATA', `option list of ${options} bytes (a multiple of 4)`);
    // the data offset counts from the first byte of the object header (RFC 2750 section 3.1)
    w.u16(8 + options, 'data offset'); w.zero(2);
    writeHex(w, v.options, 'options');
    for (const e of v.elements) writeElement(e, w);
  },
  read(r, cType) {
    if (cType !== 1) unknownCType(r, cType);
    const at = r.pos;
    const offset = r.u16('data offset');
    r.skip(2, 'reserved');
    if (offset < 8 || offset % 4 || offset - 8 > r.left) decodeError('POLICY_DATA', at, `data offset ${offset} (a multiple of 4 from 8 to the object's end)`);
    const options = r.hex(offset - 8, 'option list');
    const elements: PolicyElement[] = [];
    while (r.left) elements.push(readElement(r));
    return { kind: 'POLICY_DATA', options, elements };
  },
});
