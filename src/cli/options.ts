/* The option parsers the commands share: each takes the text given and returns the value, or
 * throws QOS_ERR_USAGE naming the option (exit 64). */

import { readFileSync } from 'node:fs';
import { QosError } from '../errors.js';
import { idEntries } from '../id-names.js';
import { parseDurationUs, parseRate } from '../units.js';

/** A group given by name (from /etc/group) or number. */
export function groupId(v: string): number {
  if (/^\d+$/.test(v)) return Number(v);
  const gid = idEntries(readFileSync('/etc/group', 'utf8')).find(([name]) => name === v)?.[1];
  if (gid === undefined) throw new QosError('QOS_ERR_USAGE', `--admin-group: no group "${v}" in /etc/group`);
  return gid;
}

/** A whole number above 0. */
export function positiveInt(v: string, name: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new QosError('QOS_ERR_USAGE', `${name} takes a positive whole number, not "${v}"`);
  return n;
}

/** A whole number, 0 or more. */
export function wholeNumber(v: string, name: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < 0) throw new QosError('QOS_ERR_USAGE', `${name} takes a whole number (0 or more), not "${v}"`);
  return n;
}

/** A scheduling priority, -20..19, or "keep" (leave it as it is). */
export function niceValue(v: string): number | 'keep' {
  if (v === 'keep') return v;
  const n = Number(v);
  if (!Number.isInteger(n) || n < -20 || n > 19) throw new QosError('QOS_ERR_USAGE', `--nice takes -20..19 or "keep", not "${v}"`);
  return n;
}

/** A bit rate such as 10M, 100mbit, 1.5G or 64000 (bits per second). */
export function bitRate(v: string, name: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)(?:bit|b|bps)?$/i.exec(v.trim());
  const n = m ? Number(m[1]) * ({ '': 1, k: 1e3, m: 1e6, g: 1e9 } as Record<string, number>)[m[2]!.toLowerCase()]! : NaN;
  if (!(n >= 64_000 && n <= 100e9)) throw new QosError('QOS_ERR_USAGE', `${name} takes a rate from 64k to 100G bits/s such as 10M or 100mbit, not "${v}"`);
  return n;
}

/** A duration in seconds: 30s, 500ms, 2m, or bare seconds. */
export function duration(v: string, name: string): number {
  let us = NaN;
  try { us = parseDurationUs(v, 's'); } catch { /* reported below, naming the option */ }
  if (!(us > 0)) throw new QosError('QOS_ERR_USAGE', `${name} takes a time such as 30s, 500ms or 2m, not "${v}"`);
  return us / 1e6;
}

/** --key KEYID=SECRET values (`qos rsvp decode`, `qos rsvp router`, `qos daemon --rsvp-key`) as a map from key id (12 hex digits) to the key's bytes. */
export function parseKeys(values: string[], flag = '--key'): Map<string, Uint8Array> {
  const keys = new Map<string, Uint8Array>();
  for (const v of values) {
    const m = /^([0-9a-fA-F]{12})=(.+)$/.exec(v);
    if (!m) throw new QosError('QOS_ERR_USAGE', `${flag} takes KEYID=SECRET, the key id as 12 hex digits, not "${v.replace(/=.*/, '=...')}"`);
    const secret = m[2]!;
    if (/^0x/i.test(secret) && !/^0x([0-9a-fA-F]{2})+$/.test(secret)) throw new QosError('QOS_ERR_USAGE', `${flag} ${m[1]}: a secret after 0x is pairs of hex digits`);
    keys.set(m[1]!.toLowerCase(), /^0x/i.test(secret) ? Buffer.from(secret.slice(2), 'hex') : Buffer.from(secret, 'utf8'));
  }
  return keys;
}

/** NAME=RATE options (a link's, a user's quota): bytes/s by name. */
export function namedRates(values: string[], option: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) {
    const m = /^([^=]+)=(.+)$/.exec(v);
    if (!m) throw new QosError('QOS_ERR_USAGE', `${option} takes NAME=RATE, e.g. eth0=100Mbit, not "${v}"`);
    out[m[1]!] = parseRate(m[2]!);
  }
  return out;
}
