/* The nftables side of sender TCP cheating (docs/tcp-cheating.md), pure: the connection as
 * given on the command line, the table that drops the receiver's real ACKs at the ingress
 * router (seed 001, "The TCP Cheating mechanism": the sender must stay blind to the reverse
 * path), as the nft JSON document applied, and the drop count read back from `nft -j list`. */

import { isIPv4 } from 'node:net';
import { QosError } from '../errors.js';

/** An IPv4 address and a TCP port. */
export interface Endpoint { addr: string; port: number }

/** The one TCP connection cheated on: data flows from sender to receiver. */
export interface Connection { sender: Endpoint; receiver: Endpoint }

/** "A.B.C.D:PORT" as an Endpoint; a QOS_ERR_USAGE naming the option otherwise (IPv4 only: the
 * helper builds IPv4 headers). */
export function parseEndpoint(s: string, option: string): Endpoint {
  const m = /^([0-9.]+):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[2]) : 0;
  if (!m || !isIPv4(m[1]!) || port < 1 || port > 65535) {
    throw new QosError('QOS_ERR_USAGE', `${option} takes an IPv4 address and a port, A.B.C.D:PORT (port 1 to 65535), not "${s}"`);
  }
  return { addr: m[1]!, port };
}

/** The table's name: one per connection, the same for the same connection, so that a cheat
 * started again for it finds and removes what a killed one left. */
export function tableName(c: Connection): string {
  // FNV-1a, 32 bits, of the 5-tuple
  let h = 0x811c9dc5;
  for (const ch of `tcp ${c.sender.addr}:${c.sender.port} ${c.receiver.addr}:${c.receiver.port}`) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `qosd_tcpcheat_${h.toString(16).padStart(8, '0')}`;
}

/** The chain and the rule's comment, which counters() looks for. */
export const CHAIN = 'real_acks';
const COMMENT = 'real ACKs of the cheated connection';

type Json = Record<string, unknown>;

/** The nft JSON document that creates the table: in the forward hook (the real ACKs only pass
 * through the router), every packet of the connection from the receiver to the sender that
 * is not SYN, FIN or RST is counted and dropped. The connection carries data one way only, so
 * what is dropped is the receiver's ACKs; its SYN-ACK, FIN and RST still reach the sender, so
 * the connection can open and close. */
export function planTable(c: Connection, name = tableName(c)): { nftables: Json[] } {
  const match = (proto: 'ip' | 'tcp', field: string, right: unknown): Json => ({ match: { op: '==', left: { payload: { protocol: proto, field } }, right } });
  return {
    nftables: [
      { metainfo: { json_schema_version: 1 } },
      { add: { table: { family: 'inet', name } } },
      { add: { chain: { family: 'inet', table: name, name: CHAIN, type: 'filter', hook: 'forward', prio: 0, policy: 'accept' } } },
      {
        add: {
          rule: {
            family: 'inet', table: name, chain: CHAIN, comment: COMMENT,
            expr: [
              match('ip', 'saddr', c.receiver.addr),
              match('ip', 'daddr', c.sender.addr),
              match('tcp', 'sport', c.receiver.port),
              match('tcp', 'dport', c.sender.port),
              { match: { op: '==', left: { '&': [{ payload: { protocol: 'tcp', field: 'flags' } }, ['syn', 'fin', 'rst']] }, right: 0 } },
              { counter: null },
              { drop: null },
            ],
          },
        },
      },
    ],
  };
}

/** The packets the table's rule dropped, from `nft -j list table inet NAME`. */
export function droppedCount(listing: string): number {
  const doc = JSON.parse(listing) as { nftables?: { rule?: { chain?: string; comment?: string; expr?: { counter?: { packets?: number } }[] } }[] };
  for (const o of doc.nftables ?? []) {
    const r = o.rule;
    if (r?.chain !== CHAIN || r.comment !== COMMENT) continue;
    const counter = r.expr?.find((e) => e.counter)?.counter;
    if (typeof counter?.packets === 'number') return counter.packets;
  }
  throw new QosError('QOS_ERR_KERNEL', 'the cheat\'s nftables table has no counter for the real ACKs (was it changed by hand?)');
}
