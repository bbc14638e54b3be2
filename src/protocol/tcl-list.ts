/* Tcl list codec for the agent protocol: the paper marshals every call's arguments "according
 * to the lexical rules of the scripting language" (section 4.1.2). This follows Tcl 8.6 list
 * syntax (braces, double quotes, backslash substitution), without command or variable
 * substitution, and refuses anything malformed. */

import { QosError } from '../errors.js';

function isSpace(c: number): boolean {
  return c <= 32 && (c === 32 || (c >= 9 && c <= 13));
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Backslash substitution at s[i] (s[i] is the backslash); returns [text, next index]. */
function backslash(s: string, i: number): [string, number] {
  const c = s[i + 1];
  if (c === undefined) return ['\\', i + 1];
  switch (c) {
    case 'a': return ['\x07', i + 2];
    case 'b': return ['\b', i + 2];
    case 'f': return ['\f', i + 2];
    case 'n': return ['\n', i + 2];
    case 'r': return ['\r', i + 2];
    case 't': return ['\t', i + 2];
    case 'v': return ['\v', i + 2];
    case 'x': {
      let v = 0, j = i + 2, n = 0;
      while (n < 2 && j < s.length && hexVal(s.charCodeAt(j)) >= 0) { v = v * 16 + hexVal(s.charCodeAt(j)); j++; n++; }
      return n ? [String.fromCharCode(v), j] : ['x', i + 2];
    }
    case 'u': {
      let v = 0, j = i + 2, n = 0;
      while (n < 4 && j < s.length && hexVal(s.charCodeAt(j)) >= 0) { v = v * 16 + hexVal(s.charCodeAt(j)); j++; n++; }
      return n ? [String.fromCharCode(v), j] : ['u', i + 2];
    }
    case '\n': {
      let j = i + 2;
      while (j < s.length && (s[j] === ' ' || s[j] === '\t')) j++;
      return [' ', j];
    }
    default:
      if (c >= '0' && c <= '7') {
        let v = 0, j = i + 1, n = 0;
        while (n < 3 && j < s.length && s[j]! >= '0' && s[j]! <= '7') { v = v * 8 + (s.charCodeAt(j) - 48); j++; n++; }
        return [String.fromCharCode(v & 0xff), j];
      }
      return [c, i + 2];
  }
}

/** Splits a Tcl list into its elements (strings). Throws QOS_ERR_PROTOCOL on bad syntax.
 * On the daemon's hot path (every request line, and each address in one): the common
 * elements, bare words and braces without backslashes, are scanned by char code and cut out
 * with one slice; elements with backslashes take the substituting loop. */
export function parseList(s: string): string[] {
  const out: string[] = [];
  let i = 0;
  const n = s.length;
  for (;;) {
    while (i < n && isSpace(s.charCodeAt(i))) i++;
    if (i >= n) return out;
    const c = s.charCodeAt(i);
    if (c === 123 /* { */) {
      let depth = 1, j = i + 1;
      while (j < n) {
        const d = s.charCodeAt(j);
        if (d === 92 /* \\ */) j += 2;
        else {
          j++;
          if (d === 123) depth++;
          else if (d === 125 /* } */ && --depth === 0) break;
        }
      }
      if (depth !== 0) throw new QosError('QOS_ERR_PROTOCOL', `unmatched open brace in list at ${i}`);
      if (j < n && !isSpace(s.charCodeAt(j)))
        throw new QosError('QOS_ERR_PROTOCOL', `list element in braces followed by "${s[j]}" instead of space at ${j}`);
      // Inside braces only backslash-newline is substituted.
      const inner = s.slice(i + 1, j - 1);
      out.push(inner.includes('\\') ? inner.replace(/\\\n[ \t]*/g, ' ') : inner);
      i = j;
    } else if (c === 34 /* " */) {
      let j = i + 1, text = '', from = j;
      while (j < n) {
        const c2 = s.charCodeAt(j);
        if (c2 === 34) break;
        if (c2 === 92 /* \\ */) { const [t, k] = backslash(s, j); text += s.slice(from, j) + t; j = from = k; }
        else j++;
      }
      text += s.slice(from, j);
      if (j >= n) throw new QosError('QOS_ERR_PROTOCOL', `unmatched open quote in list at ${i}`);
      j++;
      if (j < n && !isSpace(s.charCodeAt(j)))
        throw new QosError('QOS_ERR_PROTOCOL', `list element in quotes followed by "${s[j]}" instead of space at ${j}`);
      out.push(text);
      i = j;
    } else {
      let j = i;
      while (j < n) {
        const c2 = s.charCodeAt(j);
        if (c2 === 92 /* \\ */ || isSpace(c2)) break;
        j++;
      }
      if (j >= n || s.charCodeAt(j) !== 92) { out.push(s.slice(i, j)); i = j; continue; }
      let text = s.slice(i, j), from = j;
      while (j < n) {
        const c2 = s.charCodeAt(j);
        if (isSpace(c2)) break;
        if (c2 === 92) { const [t, k] = backslash(s, j); text += s.slice(from, j) + t; j = from = k; }
        else j++;
      }
      text += s.slice(from, j);
      out.push(text);
      i = j;
    }
  }
}

const SPECIAL = /[\s{}[\]$;"\\]|^#/;

/** Quotes one element so that parseList (and Tcl) read it back unchanged. */
export function quoteElement(e: string): string {
  if (e === '') return '{}';
  if (!SPECIAL.test(e) && !/[\x00-\x1f\x7f]/.test(e)) return e;
  // Braces when balanced, single-line and not ending in a backslash: most readable.
  if (!/[\r\n\x00-\x1f\x7f]/.test(e) && !e.endsWith('\\') && balanced(e) && !/\\[{}]/.test(e)) return `{${e}}`;
  let out = '';
  for (let i = 0; i < e.length; i++) {
    const ch = e[i]!;
    const code = e.charCodeAt(i);
    if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 32 || code === 127) out += '\\x' + code.toString(16).padStart(2, '0');
    else if (/[\s{}[\]$;"\\]/.test(ch) || (i === 0 && ch === '#')) out += '\\' + ch;
    else out += ch;
  }
  return out;
}

function balanced(e: string): boolean {
  let d = 0;
  for (const ch of e) {
    if (ch === '{') d++;
    else if (ch === '}' && --d < 0) return false;
  }
  return d === 0;
}

/** Formats elements as one Tcl list. */
export function formatList(elements: readonly string[]): string {
  return elements.map(quoteElement).join(' ');
}
