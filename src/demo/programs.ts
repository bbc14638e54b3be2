/* What the demonstration's own programs share: their argument parsing and the clock. They
 * are ordinary programs that know nothing of qosd (the agent is what marks their traffic). */

import { isIPv6 } from 'node:net';
import { parseArgs } from 'node:util';

/** Wall-clock time in microseconds since the epoch: the same clock in every namespace, so
 * one host's send time and another's receive time can be compared. */
export function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** "HOST:PORT" or "[IPv6]:PORT" as parts; exits with a message on anything else. */
export function hostPort(s: string | undefined, what: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(s ?? '');
  if (!m || Number(m[3]) < 1 || Number(m[3]) > 65535) die(`${what} takes HOST:PORT or [IPv6]:PORT, not "${s ?? ''}"`);
  return { host: m![1] ?? m![2]!, port: Number(m![3]) };
}

/** The "HOST:PORT" that hostPort reads: an IPv6 address in brackets (RFC 3986 §3.2.2). */
export function joinHostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The datagram socket type for sending to host. */
export function udpType(host: string): 'udp4' | 'udp6' {
  return isIPv6(host) ? 'udp6' : 'udp4';
}

export function num(s: string | undefined, what: string, min: number, fallback: number): number {
  if (s === undefined) return fallback;
  const n = Number(s);
  if (!Number.isFinite(n) || n < min) die(`${what} takes a number ≥ ${min}, not "${s}"`);
  return n;
}

export function die(msg: string): never {
  process.stderr.write(`${process.argv[1]?.split('/').pop()}: ${msg}\n`);
  process.exit(64);
}

export function args<T extends Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>>(options: T) {
  try {
    return parseArgs({ options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    die((e as Error).message);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));
