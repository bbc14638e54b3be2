/* The hosts of `qos rsvp bench`'s router load: run in a network namespace as
 *   node dist/bench/rsvp-load.js sender|receiver SESSIONS DEST REFRESH_MS SENDER_ADDRESS
 * A sender announces SESSIONS sessions (DEST, UDP ports 1024 and up, each from its own source
 * port); a receiver asks for a Controlled Load reservation of each (FF, for that sender).
 * Both are ordinary RSVP hosts (rsvp/node.ts): they refresh every REFRESH_MS, as hosts do. It
 * prints "ready" once every session is asked for, and stops when its standard input closes.
 * IPv4 only: the chain's namespaces have no IPv6 addresses. */

import { RsvpNode } from '../rsvp/node.js';
import type { Session } from '../rsvp/session.js';

const BATCH = 100;

/** each session's traffic: 10 kB/s (the sample G.711 stream) */
const TSPEC = { r: 10_000, b: 400, p: Infinity, m: 200, M: 200 };

export const sessionOf = (dest: string, i: number): Session => ({ kind: 'SESSION', destination: dest, protocol: 17, flags: 0, port: 1024 + i });
export const senderPort = (i: number) => 1024 + i;

async function main(): Promise<void> {
  const [role, count, dest, refresh, senderAddress] = process.argv.slice(2);
  const n = Number(count), refreshMs = Number(refresh);
  if ((role !== 'sender' && role !== 'receiver') || !(n > 0) || !dest || !(refreshMs > 0) || !senderAddress) {
    process.stderr.write('usage: rsvp-load.js sender|receiver SESSIONS DEST REFRESH_MS SENDER_ADDRESS\n');
    process.exit(2);
  }
  const node = await RsvpNode.open({ role: 'host', refreshMs, families: [4] });
  for (let i = 0; i < n; i++) {
    // 2,000 sessions a second: a burst of 10,000 Path messages at once would overflow the
    // router's receive buffer, and the sessions lost would wait a refresh period
    if (i && i % BATCH === 0) await new Promise((r) => setTimeout(r, 50));
    const session = sessionOf(dest, i);
    if (role === 'sender') node.engine.sender({ session, sender: { kind: 'SENDER_TEMPLATE', source: senderAddress, port: senderPort(i) }, tspec: { kind: 'SENDER_TSPEC', ...TSPEC } });
    else node.engine.reserve({ session, style: 'FF', descriptors: [{ flowspec: { kind: 'FLOWSPEC', service: 'CL', tspec: TSPEC }, filters: [{ kind: 'FILTER_SPEC', source: senderAddress, port: senderPort(i) }] }] });
  }
  process.stdout.write('ready\n');
  process.stdin.resume();
  process.stdin.on('end', () => { void node.close().then(() => process.exit(0)); });
}

if (import.meta.url === `file://${process.argv[1]}`) void main();
