/* `qos rsvp`: the RSVP codec without a daemon (rsvp/; docs/rsvp.md). `decode` reads one message
 * given in hex, or every RSVP packet of a capture file, and prints each decoded, or the error
 * that names the object and byte where it is malformed. */

import { Command } from 'commander';
import { exitCodeFor, QosError } from '../../errors.js';
import { print } from '../format.js';

/** --key KEYID=SECRET values as a map from key id (12 hex digits) to the key's bytes. */
function parseKeys(values: string[]): Map<string, Uint8Array> {
  const keys = new Map<string, Uint8Array>();
  for (const v of values) {
    const m = /^([0-9a-fA-F]{12})=(.+)$/.exec(v);
    if (!m) throw new QosError('QOS_ERR_USAGE', `--key takes KEYID=SECRET, the key id as 12 hex digits, not "${v.replace(/=.*/, '=...')}"`);
    const secret = m[2]!;
    if (/^0x/i.test(secret) && !/^0x([0-9a-fA-F]{2})+$/.test(secret)) throw new QosError('QOS_ERR_USAGE', `--key ${m[1]}: a secret after 0x is pairs of hex digits`);
    keys.set(m[1]!.toLowerCase(), /^0x/i.test(secret) ? Buffer.from(secret.slice(2), 'hex') : Buffer.from(secret, 'utf8'));
  }
  return keys;
}

/** Registers `qos rsvp` and its subcommands. */
export function rsvpCommands(program: Command): void {
  const rsvp = program
    .command('rsvp')
    .description('RSVP (RFC 2205) messages: the codec of the messages and objects, IntServ (RFC 2210) included (docs/rsvp.md)');
  rsvp
    .command('decode')
    .description('decode RSVP messages: one given with --hex, or every one in a pcap or pcapng file (IP protocol 46, or UDP port 1698/1699); each object\'s fields, the checksum checked, the object order of RFC 2205 section 3.1 reported. A malformed message is reported with the object and byte offset; the exit status is then 65.')
    .argument('[file]', 'a capture file (tcpdump -w, Wireshark)')
    .option('--hex <hex>', 'one RSVP message, from its common header on, in hex (spaces and colons allowed)')
    .option('--key <keyid=secret>', 'check every message\'s INTEGRITY object (RFC 2747, HMAC-MD5) with this key: its 48-bit key id as 12 hex digits, = and the secret (text, or hex after 0x); repeat for more keys. A message without INTEGRITY, with an unknown key id or a wrong digest is then an error (QOS_ERR_RSVP_INTEGRITY)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--json', 'print JSON: for --hex one object {ok, message | error}; for a file an array of {packet, src, dst, transport, ok, message | error} (message: type, flags, sendTtl, length, checksum, objects, orderProblems; Infinity as "Infinity")')
    .action(async (file: string | undefined, o: { hex?: string; json?: boolean; key: string[] }) => {
      if ((file === undefined) === (o.hex === undefined)) throw new QosError('QOS_ERR_USAGE', 'qos rsvp decode takes either --hex HEX or a capture file, one of the two');
      const message = await import('../../rsvp/message.js');
      const keys = parseKeys(o.key);
      // with keys, a message must pass its INTEGRITY check before it is shown
      const decode = (b: Uint8Array) => {
        if (keys.size) message.verifyIntegrity(b, (id) => keys.get(id));
        return message.decode(b);
      };
      const { formatMessage, messageJson, toJson } = await import('../../rsvp/format.js');
      const { hexBytes, rsvpInCapture } = await import('../../rsvp/input.js');
      if (o.hex !== undefined) {
        const bytes = hexBytes(o.hex);
        if (!o.json) { print(formatMessage(decode(bytes), bytes)); return; }
        try {
          print(toJson({ ok: true, message: messageJson(decode(bytes), bytes) }));
        } catch (e) {
          if (!(e instanceof QosError)) throw e;
          print(toJson({ ok: false, error: e.toJSON() }));
          process.exitCode = exitCodeFor(e);
        }
        return;
      }
      const found = await rsvpInCapture(file!);
      const results = found.map((r) => {
        const where = { packet: r.packet, src: r.src, dst: r.dst, transport: r.transport };
        try {
          const m = decode(r.bytes);
          return { ...where, ok: true as const, message: m, bytes: r.bytes };
        } catch (e) {
          if (!(e instanceof QosError)) throw e;
          return { ...where, ok: false as const, error: e };
        }
      });
      const failed = results.find((r) => !r.ok);
      if (failed && !failed.ok) process.exitCode = exitCodeFor(failed.error);
      if (o.json) {
        print(toJson(results.map((r) => {
          const where = { packet: r.packet, src: r.src, dst: r.dst, transport: r.transport };
          return r.ok ? { ...where, ok: true, message: messageJson(r.message, r.bytes) } : { ...where, ok: false, error: r.error.toJSON() };
        })));
        return;
      }
      print(results.length
        ? results.map((r) => `packet ${r.packet} ${r.src} > ${r.dst} ${r.transport === 'udp' ? 'UDP' : 'IP'}: ${r.ok ? formatMessage(r.message, r.bytes) : `error: ${r.error.message}`}`).join('\n')
        : `no RSVP packets in ${file}`);
    });
}
