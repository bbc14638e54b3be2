/* The fleet's keys in etcd (docs/fleet.md, "Keys"), pure. Under a prefix P (default /qosd):
 *
 *   P/policy/fleet, P/policy/group/<G>, P/policy/node/<N>, P/policy/canary/<N>   policy text
 *   P/rules/fleet,  P/rules/group/<G>,  P/rules/node/<N>,  P/rules/canary/<N>    kernel rule sets
 *   P/status/<N>   a node's status (JSON), on a lease: gone when the node is
 *   P/log          what `qos fleet` last changed (JSON); its earlier values, etcd's history of
 *                  the key, are `qos fleet history`
 *
 * A node takes, for each kind of document, the first of its keys that exists, in precedence
 * order: its canary key (a staged roll-out, `qos fleet push --canary`), its node key, its
 * groups' keys in the order of --groups, the fleet's. A document replaces, never merges. */

import { QosError } from '../errors.js';

export const DEFAULT_PREFIX = '/qosd';
export type DocKind = 'policy' | 'rules';
export const DOC_KINDS: readonly DocKind[] = ['policy', 'rules'];
export type Level = 'fleet' | 'group' | 'node' | 'canary';

/** A node's or a group's name: what may follow a key's last slash. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function checkName(what: string, name: string): string {
  if (!NAME_RE.test(name)) throw new QosError('QOS_ERR_USAGE', `${what} "${name}" is not a name qosd takes: 1 to 63 letters, digits, ".", "_" and "-", starting with a letter or digit`);
  return name;
}

/** The prefix as keys use it: starts with "/", no trailing "/". */
export function normPrefix(p: string): string {
  const t = p.replace(/\/+$/, '');
  if (!/^\/[\x21-\x7e]{0,200}$/.test(t) || t === '') throw new QosError('QOS_ERR_USAGE', `--fleet-prefix is a key prefix starting with "/", printable and without spaces, such as ${DEFAULT_PREFIX}; not "${p}"`);
  return t;
}

/** Where a document is: its kind, and the level with its name (none for the fleet). */
export interface Target { kind: DocKind; level: Level; name?: string }

export function docKey(prefix: string, t: Target): string {
  return t.level === 'fleet' ? `${prefix}/${t.kind}/fleet` : `${prefix}/${t.kind}/${t.level}/${t.name!}`;
}

export function statusKey(prefix: string, node: string): string { return `${prefix}/status/${node}`; }
export function statusPrefix(prefix: string): string { return `${prefix}/status/`; }
export function logKey(prefix: string): string { return `${prefix}/log`; }
export function kindPrefix(prefix: string, kind: DocKind): string { return `${prefix}/${kind}/`; }

/** The end of the range of keys starting with key (etcd's prefix range: the last byte below
 * 0xff incremented, what etcdctl --prefix sends). */
export function prefixEnd(key: Buffer | string): Buffer {
  const end = Buffer.from(key);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) { end[i]!++; return end.subarray(0, i + 1); }
  }
  return Buffer.from([0]);
}

/** The target a key names, or null for a key that is not a document's. */
export function parseDocKey(prefix: string, key: string): Target | null {
  if (!key.startsWith(`${prefix}/`)) return null;
  const parts = key.slice(prefix.length + 1).split('/');
  const kind = parts[0];
  if (kind !== 'policy' && kind !== 'rules') return null;
  if (parts.length === 2 && parts[1] === 'fleet') return { kind, level: 'fleet' };
  if (parts.length === 3 && (parts[1] === 'group' || parts[1] === 'node' || parts[1] === 'canary') && NAME_RE.test(parts[2]!)) return { kind, level: parts[1], name: parts[2]! };
  return null;
}

/** The keys a node reads for one kind, highest precedence first. */
export function keysFor(prefix: string, kind: DocKind, node: string, groups: readonly string[]): string[] {
  return [
    docKey(prefix, { kind, level: 'canary', name: node }),
    docKey(prefix, { kind, level: 'node', name: node }),
    ...groups.map((g) => docKey(prefix, { kind, level: 'group', name: g })),
    docKey(prefix, { kind, level: 'fleet' }),
  ];
}

/** One version of a document: its key, its text and the etcd revision that wrote it. */
export interface DocVersion { key: string; value: string; revision: number }

/** The document a node runs for one kind: the first of its keys present, or null. */
export function effective(docs: ReadonlyMap<string, DocVersion>, prefix: string, kind: DocKind, node: string, groups: readonly string[]): DocVersion | null {
  for (const k of keysFor(prefix, kind, node, groups)) {
    const d = docs.get(k);
    if (d) return d;
  }
  return null;
}

/** "etcd://h:p[,h:p...]" (or "etcds://" for TLS) as etcd3's hosts; `tls` asks for https. */
export function parseFleet(url: string, tls = false): string[] {
  const m = /^(etcds?):\/\/(.+)$/.exec(url.trim());
  if (!m) throw new QosError('QOS_ERR_USAGE', `--fleet takes etcd://HOST:PORT[,HOST:PORT...] (etcds:// for TLS), not "${url}"`);
  const scheme = tls || m[1] === 'etcds' ? 'https' : 'http';
  return m[2]!.split(',').map((hp) => {
    const h = hp.trim().replace(/\/+$/, '');
    if (!/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(h) || Number(h.slice(h.lastIndexOf(':') + 1)) > 65535) {
      throw new QosError('QOS_ERR_USAGE', `--fleet: "${hp}" is not HOST:PORT (in ${url})`);
    }
    return `${scheme}://${h}`;
  });
}

/** A percentage such as "10%" (or "10") as a fraction in (0, 1]. */
export function parseShare(s: string): number {
  const m = /^(\d{1,3}(?:\.\d+)?)%?$/.exec(s.trim());
  const v = m ? Number(m[1]) : NaN;
  if (!(v > 0 && v <= 100)) throw new QosError('QOS_ERR_USAGE', `--canary takes a share of the target nodes above 0 and at most 100%, such as 10%; not "${s}"`);
  return v / 100;
}
