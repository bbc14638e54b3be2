/* Line framing of the agent protocol (docs/protocol.md): every request and every reply is one
 * line of UTF-8 text ended by a newline (byte 10); the Tcl quoting keeps a request on one line.
 * A line may be at most MAX_LINE bytes: a longer one is refused (the daemon closes the
 * connection, docs/security.md). */

import { QosError } from '../errors.js';

/** Longest request line accepted, in bytes; longer lines are refused and the connection closed. */
export const MAX_LINE = 65536;
export const NEWLINE = 10;

/** The end (the newline's index) of the line that starts at from in buf, or -1 if incomplete. */
export function lineEnd(buf: Uint8Array, from: number): number {
  return buf.indexOf(NEWLINE, from);
}

/** The text of the line buf[start, end) (end: its newline). */
export function lineText(buf: Buffer, start: number, end: number): string {
  return buf.toString('utf8', start, end);
}

/** Splits a byte stream into lines, for readers that take each line as it comes. */
export class LineSplitter {
  private rest: Buffer | null = null;
  constructor(private readonly max = MAX_LINE) {}

  /** The lines chunk completes, in order. Throws QosError(QOS_ERR_MESSAGE_TOO_LONG) once the
   * unfinished line is longer than max (the splitter is then of no further use). */
  push(chunk: Buffer): string[] {
    const buf = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
    const out: string[] = [];
    let start = 0;
    for (let nl = lineEnd(buf, 0); nl >= 0; start = nl + 1, nl = lineEnd(buf, start)) out.push(lineText(buf, start, nl));
    this.rest = start < buf.length ? Buffer.from(buf.subarray(start)) : null;
    if (this.rest && this.rest.length > this.max)
      throw new QosError('QOS_ERR_MESSAGE_TOO_LONG', `line longer than ${this.max} bytes`);
    return out;
  }
}
