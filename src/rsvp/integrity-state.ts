/* INTEGRITY across messages (RFC 2747) for a node that holds keys: what it receives must be
 * signed with a key it knows, carry a digest that matches and a sequence number above the last
 * one it accepted for that key id from that sender (replay, section 3.2 / 4.2); what it sends
 * gets an INTEGRITY object with the first key's id and a sequence number that only grows, and
 * is signed (message.ts encode(m, key)). Pure: the wall clock is given. The integrity handshake
 * (section 4.3, challenge and response) is not done: a node that restarts starts its numbers
 * above the last it could have sent (the time in seconds in the high 32 bits, section 3.2), so
 * its neighbours need no handshake to take them. */

import { checkDigest, type Integrity, type IntegrityFailure, MD5_DIGEST } from './integrity.js';
import { encode, type RsvpMessage } from './message.js';

/** Why a received message is dropped. */
export type IntegrityDrop = IntegrityFailure | 'replay';

export interface IntegrityOptions {
  /** keys by key id (12 hex digits); the first signs what is sent */
  keys: Map<string, Uint8Array>;
  /** drop what arrives without INTEGRITY (else only a message that carries one is checked) */
  require?: boolean;
  /** the wall clock, ms (default Date.now): where sequence numbers start */
  now?: () => number;
  /** how many (key id, sender) pairs the last sequence number is kept for (default 4096; the
   * least recently heard is forgotten first) */
  maxPeers?: number;
}

export class IntegrityState {
  private readonly last = new Map<string, bigint>();
  private readonly maxPeers: number;
  private readonly keyId: string;
  private readonly key: Uint8Array;
  private sequence: bigint;

  constructor(private readonly o: IntegrityOptions) {
    const first = [...o.keys][0];
    if (!first) throw new Error('internal: IntegrityState without a key');
    [this.keyId, this.key] = first;
    this.maxPeers = o.maxPeers ?? 4096;
    // RFC 2747 section 3.2: the clock's seconds in the high 32 bits, a message counter in the low
    this.sequence = BigInt(Math.floor((o.now ?? Date.now)() / 1000)) << 32n;
  }

  /** A received message (its bytes and what they decoded to) from the IP source `src`: null
   * to take it, or why it is dropped. A taken message's sequence number is the new last one. */
  check(bytes: Uint8Array, msg: RsvpMessage, src: string): IntegrityDrop | null {
    if (!this.o.require && !msg.objects.some((x) => x.kind === 'INTEGRITY')) return null;
    const c = checkDigest(bytes, msg.objects, (id) => this.o.keys.get(id));
    if (!c.ok) return c.why;
    const peer = `${c.keyId}|${src}`;
    const seq = BigInt(c.sequence);
    const before = this.last.get(peer);
    if (before !== undefined && seq <= before) return 'replay';
    this.last.delete(peer); // to the end: the least recently heard is first
    this.last.set(peer, seq);
    if (this.last.size > this.maxPeers) this.last.delete(this.last.keys().next().value!);
    return null;
  }

  /** The message's bytes with an INTEGRITY object first (RFC 2747 section 2: any one it had is
   * replaced), the next sequence number, signed with the first key. */
  sign(msg: RsvpMessage): Uint8Array {
    this.sequence += 1n;
    const integrity: Integrity = { kind: 'INTEGRITY', flags: 0, keyId: this.keyId, sequence: this.sequence.toString(), digest: '00'.repeat(MD5_DIGEST) };
    return encode({ ...msg, objects: [integrity, ...msg.objects.filter((x) => x.kind !== 'INTEGRITY')] }, this.key);
  }
}
