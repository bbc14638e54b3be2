/* DSCP names (RFC 2474 class selectors, RFC 2597 AF, RFC 3246 EF, RFC 5865 VA, RFC 8622 LE)
 * and the errno names a DENY may carry. */

export const DSCP_NAMES: Readonly<Record<string, number>> = Object.freeze({
  CS0: 0, DF: 0, BE: 0, LE: 1,
  CS1: 8, AF11: 10, AF12: 12, AF13: 14,
  CS2: 16, AF21: 18, AF22: 20, AF23: 22,
  CS3: 24, AF31: 26, AF32: 28, AF33: 30,
  CS4: 32, AF41: 34, AF42: 36, AF43: 38,
  CS5: 40, VA: 44, EF: 46, CS6: 48, CS7: 56,
});

/** DSCP value of a name or number, or undefined. */
export function dscpValue(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 && v <= 63 ? v : undefined;
  if (/^\d+$/.test(v)) return dscpValue(Number(v));
  return DSCP_NAMES[v.toUpperCase()];
}

const CANONICAL: string[] = [];
for (const [k, n] of Object.entries(DSCP_NAMES)) if (k !== 'DF' && k !== 'BE' && CANONICAL[n] === undefined) CANONICAL[n] = k;

/** The canonical name of a DSCP value (EF, AF41, CS0...), or its number. */
export function dscpName(v: number): string {
  return (Number.isInteger(v) && CANONICAL[v]) || String(v);
}

/** Errno names the agent understands in a DENY reply (agent/msg.c keeps the same list;
 * src/agent/codec.test.ts checks it reads each). */
export const ERRNO_NAMES: readonly string[] = [
  'EPERM', 'EACCES', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'ETIMEDOUT', 'ECONNRESET',
  'ECONNABORTED', 'EADDRINUSE', 'EADDRNOTAVAIL', 'ENOBUFS', 'EAGAIN', 'ENETDOWN', 'EHOSTDOWN',
  'EAFNOSUPPORT', 'EPROTONOSUPPORT', 'EINVAL', 'EMFILE', 'ENFILE', 'ENOMEM', 'EINTR', 'EIO',
  'EOPNOTSUPP', 'EDQUOT', 'ECANCELED',
];
