/* decode() of the lines agents send most, straight from the bytes they arrived in: a
 * question's Socket and Connect (or SendTo), and Close from an agent without a ring. A line
 * is taken here only in its plain form: ASCII, one space between elements, elements bare or in
 * braces without braces, backslashes or quotes inside, and numbers in range; anything else
 * (and every error) goes to decode(), which says what is wrong. The message is the one decode()
 * makes of the same line (src/protocol/fast-decode.test.ts holds them to it, on every form
 * the agent writes and on lines made to differ from it by one byte).
 *
 * Why: decoding a Socket + Connect pair cost 2.7 us of the daemon's ~45 us per pair under
 * load: the line made text, split as a Tcl list, the address split again, each field parsed
 * from its string. Here one pass over the bytes finds the elements and reads the numbers. */

import { FD_MAX, hostOfFamily, type Message, type SockAddr } from './messages.js';
import { MAX_LINE } from './lines.js';

/** Most elements a handled line has (Socket: Type pid uid cmd family type protocol fd). */
const MAX_ELEMENTS = 8;
/** Element bounds, reused (the daemon decodes one line at a time): start, end (exclusive). */
const at = new Int32Array(MAX_ELEMENTS * 2);

const SPACE = 32, OPEN = 123, CLOSE = 125, QUOTE = 34, BACKSLASH = 92, MINUS = 45;

/** Whether b may stand in a bare element (and in an address's parts). */
function bare(b: number): boolean {
  return b > SPACE && b < 127 && b !== OPEN && b !== CLOSE && b !== QUOTE && b !== BACKSLASH;
}

/** Finds the elements of buf[start, end); their count, or -1 if the line is not plain. */
function elements(buf: Uint8Array, start: number, end: number): number {
  let n = 0, i = start;
  while (i < end) {
    if (n === MAX_ELEMENTS) return -1;
    if (buf[i] === OPEN) {
      let j = i + 1;
      for (; j < end; j++) {
        const b = buf[j]!;
        if (b === CLOSE) break;
        if (b < SPACE || b > 126 || b === OPEN || b === BACKSLASH) return -1;
      }
      if (j >= end) return -1;
      at[2 * n] = i + 1;
      at[2 * n + 1] = j;
      i = j + 1;
    } else {
      let j = i;
      while (j < end && buf[j] !== SPACE) if (!bare(buf[j++]!)) return -1;
      if (j === i) return -1; // two spaces, or a space first
      at[2 * n] = i;
      at[2 * n + 1] = j;
      i = j;
    }
    n++;
    if (i < end) {
      if (buf[i] !== SPACE || i + 1 === end) return -1; // one space between, none at the end
      i++;
    }
  }
  return n;
}

/** The integer in buf[s, e) as int() in messages.ts reads it, if in [min, max]; else NaN. */
function num(buf: Uint8Array, s: number, e: number, min: number, max: number): number {
  const neg = buf[s] === MINUS ? 1 : 0;
  const digits = e - s - neg;
  if (digits < 1 || digits > 10) return NaN;
  let v = 0;
  for (let i = s + neg; i < e; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) return NaN;
    v = v * 10 + d;
  }
  if (neg) v = -v;
  return v >= min && v <= max ? v : NaN;
}

function same(buf: Uint8Array, s: number, e: number, word: string): boolean {
  if (e - s !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (buf[s + i] !== word.charCodeAt(i)) return false;
  return true;
}

/** The address element n ({family host port}: bare parts, one space apart), or null. */
function address(buf: Uint8Array, text: string, base: number, n: number): SockAddr | null {
  const s = at[2 * n]!, e = at[2 * n + 1]!;
  if (buf[s - 1] !== OPEN) return null;
  let a = s;
  while (a < e && buf[a] !== SPACE) a++;
  let h = a + 1;
  while (h < e && buf[h] !== SPACE) h++;
  if (a >= e || h >= e || h === a + 1 || h + 1 === e) return null;
  for (let i = a + 1; i < e; i++) if (i !== h && !bare(buf[i]!)) return null;
  const family = num(buf, s, a, 0, 65535), port = num(buf, h + 1, e, 0, 65535);
  if (family !== 2 && family !== 10) return null;
  const host = text.slice(a + 1 - base, h - base);
  if (!hostOfFamily(family, host) || Number.isNaN(port)) return null;
  return { family, host, port };
}

/** The message of the line buf[start, end) (its newline at end), or null: decode() it. */
export function decodeFast(buf: Buffer, start: number, end: number): Message | null {
  if (end - start > MAX_LINE) return null;
  const n = elements(buf, start, end);
  if (n < 5) return null;
  const t0 = at[0]!, t1 = at[1]!;
  const type = same(buf, t0, t1, 'Connect') ? 'Connect' : same(buf, t0, t1, 'Socket') ? 'Socket' : same(buf, t0, t1, 'Close') ? 'Close' : same(buf, t0, t1, 'SendTo') ? 'SendTo' : null;
  if (type === null || n !== (type === 'Socket' || type === 'Connect' ? 8 : type === 'SendTo' ? 6 : 5)) return null;
  const pid = num(buf, at[2]!, at[3]!, 1, 2 ** 22), uid = num(buf, at[4]!, at[5]!, 0, 2 ** 32 - 1);
  const fdAt = type === 'Socket' ? 7 : 4;
  const fd = num(buf, at[2 * fdAt]!, at[2 * fdAt + 1]!, 0, FD_MAX);
  if (Number.isNaN(pid) || Number.isNaN(uid) || Number.isNaN(fd)) return null;
  // the text of the line (ASCII: each byte one character), for the string elements
  const text = buf.toString('latin1', start, end);
  const str = (k: number) => text.slice(at[2 * k]! - start, at[2 * k + 1]! - start);
  const cmd = str(3);
  switch (type) {
    case 'Close':
      return { type, pid, uid, cmd, fd };
    case 'Socket': {
      const family = num(buf, at[8]!, at[9]!, 0, 65535), sockType = num(buf, at[10]!, at[11]!, 0, 15), protocol = num(buf, at[12]!, at[13]!, 0, 65535);
      if (Number.isNaN(family) || Number.isNaN(sockType) || Number.isNaN(protocol)) return null;
      return { type, pid, uid, cmd, family, sockType, protocol, fd };
    }
    case 'Connect': {
      const addr = address(buf, text, start, 5);
      return addr && { type, pid, uid, cmd, fd, address: addr, sqos: str(6), gqos: str(7) };
    }
    case 'SendTo': {
      const addr = address(buf, text, start, 5);
      return addr && { type, pid, uid, cmd, fd, address: addr };
    }
  }
}
