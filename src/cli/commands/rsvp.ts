/* `qos rsvp`: RSVP (rsvp/; docs/rsvp.md). `decode` reads one message given in hex, or every RSVP
 * packet of a capture file, and prints each decoded, or the error that names the object and
 * byte where it is malformed. `router` runs this namespace as an RSVP router. `send`,
 * `reserve`, `release`, `stop` and `status` drive the daemon's RSVP host part (`qos daemon
 * --rsvp on`) through the admin API. `bench` measures the codec and a router's cost. */

import { Command } from 'commander';
import { callJson } from '../../daemon/admin-client.js';
import { exitCodeFor, QosError } from '../../errors.js';
import { adminSocket } from '../../paths.js';
import { parseRate } from '../../units.js';
import { print } from '../format.js';
import { duration, namedRates, parseKeys, positiveInt } from '../options.js';
import { addRsvpCheat } from './rsvp-cheat.js';
import { addRsvpConnections } from './rsvp-connections.js';
import { addRsvpSessions } from './rsvp-sessions.js';

type Rec = Record<string, unknown>;
const collect = (v: string, prev: string[]) => [...prev, v];

/** NAME=RATE options as a map of bytes/s. */
/** Options a sender and a reservation share: the session and the token bucket. */
function sessionOptions(c: Command): Command {
  return c
    .requiredOption('--dest <address>', 'the session\'s destination address (the receiver, IPv4 or IPv6)')
    .requiredOption('--port <n>', 'the session\'s destination port')
    .option('--proto <udp|tcp>', 'the session\'s protocol', 'udp')
    .requiredOption('--rate <rate>', 'token rate (r): 2Mbit, 250kB')
    .option('--bucket <size>', 'token bucket (b), bytes (default: a tenth of a second at the rate, at least --max)')
    .option('--peak <rate>', 'peak rate (p; default: none)')
    .option('--min <size>', 'minimum policed unit (m), bytes (default 64)')
    .option('--max <size>', 'maximum packet size (M), bytes (default 1500)')
    .option('--admin <path>', 'admin API socket', adminSocket())
    .option('--json', 'print JSON');
}

interface SessionFlags { dest: string; port: string; proto: string; rate: string; bucket?: string; peak?: string; min?: string; max?: string; admin: string; json?: boolean }
const sessionBody = (o: SessionFlags): Rec => ({
  destination: o.dest, port: o.port, protocol: o.proto, rate: o.rate,
  ...(o.bucket ? { bucket: o.bucket } : {}), ...(o.peak ? { peak: o.peak } : {}), ...(o.min ? { min: o.min } : {}), ...(o.max ? { max: o.max } : {}),
});

/** --gs-terms DEV=C,D options: each interface's Guaranteed Service error terms, whole numbers
 * (C bytes, D microseconds) that fit the ADSPEC's 32-bit fields. */
function gsTerms(values: string[]): Map<string, { c: number; d: number }> {
  const out = new Map<string, { c: number; d: number }>();
  for (const v of values) {
    const m = /^([^=]+)=(\d+),(\d+)$/.exec(v);
    const c = Number(m?.[2]), d = Number(m?.[3]);
    if (!m || c > 0xffffffff || d > 0xffffffff) throw new QosError('QOS_ERR_USAGE', `--gs-terms takes DEV=C,D, C in bytes and D in microseconds, whole numbers below 2^32 (r1b=1500,1200), not "${v}"`);
    out.set(m[1]!, { c, d });
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Registers `qos rsvp` and its subcommands. */
export function rsvpCommands(program: Command): void {
  const rsvp = program
    .command('rsvp')
    .description('RSVP (RFC 2205, IntServ RFC 2210): decode messages, run a router that admits reservations and installs them as traffic control, ask the daemon\'s RSVP host part (qos daemon --rsvp on) to send or reserve, manage its sessions (raw or support mode, active or inactive) and follow their status notifications, find a program\'s connections, and measure it (docs/rsvp.md)');
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

  rsvp
    .command('router')
    .description('run this machine (or the network namespace it runs in) as an RSVP router until SIGTERM or SIGINT: intercepts Path messages (Router Alert), forwards Path and Resv hop by hop, admits each reservation on its outgoing interface (reservable share of the link, per-user and per-application quotas from POLICY_DATA) and installs it as a traffic control flow and filter; removes them on teardown, time-out and exit (needs root, IP forwarding on)')
    .option('--refresh <time>', 'R, the refresh period it sends with (RFC 2205 default 30s)', (v) => duration(v, '--refresh'), 30)
    .option('--k <n>', 'K: state lives (K + 0.5) x 1.5 x R after its last refresh', (v) => positiveInt(v, '--k'), 3)
    .option('--link <dev=rate>', 'an interface\'s link rate (r1b=10Mbit): its HTB root\'s rate and what admission shares out; repeat for more. An interface not named has the rate its driver reports; one that reports none (a veth) has nothing reservable', collect, [] as string[])
    .option('--gs-terms <dev=C,D>', 'the Guaranteed Service error terms an interface adds to the ADSPEC of a Path it forwards (RFC 2212 section 6): C bytes, D microseconds (r1b=1500,1200); repeat. Default, on an interface with a rate: C = its MTU, D = one MTU at its rate', collect, [] as string[])
    .option('--share <fraction>', 'the share of a link reservations may take', '0.9')
    .option('--quota-user <name=rate>', 'the most one user\'s reservations (POLICY_DATA AUTH_USER) may take, summed over the router\'s interfaces; repeat', collect, [] as string[])
    .option('--quota-app <name=rate>', 'the same for an application (AUTH_APP); repeat', collect, [] as string[])
    .option('--default-user-quota <rate>', 'the quota of a user not named (default: none)')
    .option('--default-app-quota <rate>', 'the quota of an application not named (default: none)')
    .option('--udp', 'also speak the UDP encapsulation (RFC 2205 appendix C, port 1698)')
    .option('--key <keyid=secret>', 'an INTEGRITY key (RFC 2747, HMAC-MD5): its 48-bit key id as 12 hex digits, = and the secret (text, or hex after 0x); repeat for more. With keys every message sent is signed with the first, and one received with INTEGRITY must pass its check (unknown key id, wrong digest, replayed sequence number: dropped)', collect, [] as string[])
    .option('--require-integrity', 'with --key: drop a message without INTEGRITY too')
    .option('--table <name>', 'the nftables table (family inet) for its traffic control', 'qosd_rsvp')
    .option('--state-dir <dir>', 'where it notes the interfaces it controls, so that the next router removes what a killed one left', '/run/qosd')
    .option('--json', 'print each reservation installed, changed, refused or removed as a JSON line')
    .option('--log-level <level>', 'log level (to stderr)', 'warn')
    .action(async (o: { refresh: number; k: number; link: string[]; gsTerms: string[]; share: string; quotaUser: string[]; quotaApp: string[]; defaultUserQuota?: string; defaultAppQuota?: string; udp?: boolean; key: string[]; requireIntegrity?: boolean; table: string; stateDir: string; json?: boolean; logLevel: string }) => {
      const share = Number(o.share);
      if (!(share > 0 && share <= 1)) throw new QosError('QOS_ERR_USAGE', `--share is a fraction above 0 and at most 1, not "${o.share}"`);
      if (!/^[a-z][a-z0-9_]{0,30}$/.test(o.table)) throw new QosError('QOS_ERR_USAGE', `--table is a name of lower-case letters, digits and _, not "${o.table}"`);
      const links = new Map(Object.entries(namedRates(o.link, '--link')));
      const terms = gsTerms(o.gsTerms);
      const keys = parseKeys(o.key);
      if (o.requireIntegrity && !keys.size) throw new QosError('QOS_ERR_USAGE', '--require-integrity needs a --key');
      const { mkdirSync } = await import('node:fs');
      mkdirSync(o.stateDir, { recursive: true, mode: 0o755 });
      const { pino, destination } = await import('pino');
      const log = pino({ level: o.logLevel, base: { svc: 'qos-rsvp-router' } }, destination(2));
      const { startRouter } = await import('../../rsvp/router.js');
      const { toJsonLine: toJson } = await import('../../rsvp/format.js');
      const r = await startRouter({
        refreshMs: o.refresh * 1000, k: o.k, udp: o.udp ?? false, links, gsTerms: terms, share, ...(keys.size ? { keys, requireIntegrity: o.requireIntegrity ?? false } : {}), table: o.table, stateDir: o.stateDir, log,
        quotas: {
          users: namedRates(o.quotaUser, '--quota-user'), apps: namedRates(o.quotaApp, '--quota-app'),
          default: { ...(o.defaultUserQuota ? { user: parseRate(o.defaultUserQuota) } : {}), ...(o.defaultAppQuota ? { app: parseRate(o.defaultAppQuota) } : {}) },
        },
        onEvent: (e) => print(o.json ? toJson(e) : `${e.kind} ${toJson(e)}`),
      });
      print(o.json ? toJson({ kind: 'ready', pid: process.pid }) : `RSVP router running (pid ${process.pid}); SIGUSR1 prints its state, SIGTERM or SIGINT stops it and removes its reservations`);
      // the state on demand: what it holds, what it has sent and received, what admission counts
      process.on('SIGUSR1', () => {
        const state = { kind: 'state', counts: { ...r.node.engine.counts(), ...r.node.counts() }, reservations: r.installer.list(), admitted: r.admission.usage() };
        print(o.json ? toJson(state) : `state ${toJson(state)}`);
      });
      await new Promise<void>((resolve) => { process.once('SIGTERM', resolve); process.once('SIGINT', resolve); });
      await r.stop();
      if (o.json) print(toJson({ kind: 'stopped' }));
    });

  sessionOptions(rsvp
    .command('send')
    .description('announce a sender (the daemon sends Path toward the destination every R until `qos rsvp stop ID`): the session, this sender\'s source port and its traffic (the SENDER_TSPEC)'))
    .requiredOption('--sport <n>', 'the sender\'s source port')
    .option('--source <address>', 'the sender\'s address (default: the source of the route to the destination)')
    .action(async (o: SessionFlags & { sport: string; source?: string }) => {
      const r = await callJson<Rec>(o.admin, 'POST', '/v1/rsvp/senders', { ...sessionBody(o), sport: o.sport, ...(o.source ? { source: o.source } : {}) });
      print(o.json ? JSON.stringify(r, null, 2) : `sender ${String(r.id)}: Path every R toward ${o.dest} port ${o.port}`);
    });

  sessionOptions(rsvp
    .command('reserve')
    .description('ask for a reservation as the receiver of a session (the daemon sends Resv toward each sender\'s path and refreshes it until `qos rsvp release ID`). With --wait, waits for the confirmation or the error: exit 0 when confirmed, 1 on a ResvErr (its code and value printed)'))
    .option('--style <FF|SE|WF>', 'reservation style: FF one per sender, SE shared by the senders named, WF shared by all', 'FF')
    .option('--service <CL|GS>', 'Controlled Load or Guaranteed', 'CL')
    .option('--R <rate>', 'Guaranteed: the rate reserved (default: --rate)')
    .option('--S <us>', 'Guaranteed: the slack term, microseconds')
    .option('--sender <address:port>', 'a sender the reservation is for (FF, SE); repeat', collect, [] as string[])
    .option('--user <name>', 'root only: the user the reservation is for (default: yours, from the kernel)')
    .option('--app <name>', 'root only: the application it is for (POLICY_DATA AUTH_APP)')
    .option('--wait <time>', 'wait this long for the confirmation (RESV_CONFIRM) or an error', (v) => duration(v, '--wait'))
    .action(async (o: SessionFlags & { style: string; service: string; R?: string; S?: string; sender: string[]; user?: string; app?: string; wait?: number }) => {
      const r = await callJson<Rec>(o.admin, 'POST', '/v1/rsvp/reservations', {
        ...sessionBody(o), style: o.style, service: o.service, senders: o.sender, confirm: o.wait !== undefined,
        ...(o.R ? { R: o.R } : {}), ...(o.S ? { S: o.S } : {}), ...(o.user ? { user: o.user } : {}), ...(o.app ? { app: o.app } : {}),
      });
      if (o.wait === undefined) {
        print(o.json ? JSON.stringify(r, null, 2) : `reservation ${String(r.id)}: Resv toward the senders of ${o.dest} port ${o.port}`);
        return;
      }
      // the events after the reservation's, for its session: a confirmation or an error
      const until = Date.now() + o.wait * 1000;
      let after = Number(r.seq ?? 0);
      for (;;) {
        const events = await callJson<{ seq: number; event: Rec & { session: Rec } }[]>(o.admin, 'GET', `/v1/rsvp/events?after=${after}`);
        for (const e of events) {
          after = e.seq;
          const s = e.event.session;
          if (s?.destination !== o.dest || Number(s.port) !== Number(o.port)) continue;
          if (e.event.kind === 'confirm' || e.event.kind === 'resv-error') {
            const ok = e.event.kind === 'confirm';
            print(o.json ? JSON.stringify({ reservation: r, event: e.event }, null, 2) : ok ? `reservation ${String(r.id)} confirmed (ResvConf to ${String(e.event.receiver)})` : `reservation ${String(r.id)} refused by ${String(e.event.node)}: error code ${String(e.event.code)}, value ${String(e.event.value)}`);
            if (!ok) process.exitCode = 1;
            return;
          }
        }
        if (Date.now() > until) throw new QosError('QOS_ERR_ENVIRONMENT', `reservation ${String(r.id)}: no confirmation or error within ${o.wait} s (it stays asked for; qos rsvp release ${String(r.id)})`);
        await sleep(100);
      }
    });

  for (const [name, what, path] of [['release', 'reservation', 'reservations'], ['stop', 'sender', 'senders']] as const) {
    rsvp
      .command(name)
      .description(name === 'release' ? 'release a reservation (ResvTear)' : 'stop announcing a sender (PathTear)')
      .argument('<id>', `the ${what}'s number (qos rsvp status)`)
      .option('--admin <path>', 'admin API socket', adminSocket())
      .option('--json', 'print JSON')
      .action(async (id: string, o: { admin: string; json?: boolean }) => {
        const r = await callJson<Rec>(o.admin, 'DELETE', `/v1/rsvp/${path}/${encodeURIComponent(id)}`, {});
        print(o.json ? JSON.stringify(r, null, 2) : `${what} ${id} ${name === 'release' ? 'released' : 'stopped'}`);
      });
  }

  addRsvpSessions(rsvp);

  rsvp
    .command('status')
    .description('the daemon\'s RSVP state: its senders and reservations, the path and reservation state it holds, message counts')
    .option('--admin <path>', 'admin API socket', adminSocket())
    .option('--json', 'print JSON')
    .action(async (o: { admin: string; json?: boolean }) => {
      const r = await callJson<{ held: Rec[]; counts: Rec }>(o.admin, 'GET', '/v1/rsvp');
      if (o.json) { print(JSON.stringify(r, null, 2)); return; }
      const lines = r.held.map((h) => `${String(h.kind)} ${String(h.id)} (uid ${String(h.uid)}): ${JSON.stringify(h.session)}`);
      lines.push(`counts: ${Object.entries(r.counts).map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(', ')}`);
      print(lines.join('\n'));
    });

  addRsvpConnections(rsvp);
  addRsvpCheat(rsvp);
  rsvp
    .command('bench')
    .description('what RSVP costs here: a typical Path decoded and encoded per second (target 200,000 each), and `qos rsvp router` holding 10,000 sessions refreshed every 30 s between two hosts in network namespaces: its CPU (target under 10 % of one core) and memory (needs root, ip, tc, nft for the router part)')
    .option('--json', 'print one JSON object')
    .option('--rounds <n>', 'rounds of the codec figures (decode and encode alternating)', (v) => positiveInt(v, '--rounds'), 7)
    .option('--slice <ms>', 'milliseconds of each codec measurement', (v) => positiveInt(v, '--slice'), 300)
    .option('--sessions <n>', 'sessions the router holds', (v) => positiveInt(v, '--sessions'), 10_000)
    .option('--refresh <time>', 'R of the hosts and the router', (v) => duration(v, '--refresh'), 30)
    .option('--window <time>', 'how long the router\'s CPU is measured once it holds every session (default: two refresh periods)', (v) => duration(v, '--window'))
    .option('--codec-only', 'measure the codec alone (no namespaces, no root needed)')
    .option('--check', 'exit 1 if a target is missed')
    .action(async (o: { json?: boolean; rounds: number; slice: number; sessions: number; refresh: number; window?: number; codecOnly?: boolean; check?: boolean }) => {
      const { benchRsvp, formatRsvpBench } = await import('../../bench/rsvp.js');
      const r = await benchRsvp({
        rounds: o.rounds, sliceMs: o.slice, sessions: o.sessions, refreshMs: o.refresh * 1000, windowMs: (o.window ?? 2 * o.refresh) * 1000, codecOnly: o.codecOnly ?? false,
        progress: o.json ? undefined : (m: string) => process.stderr.write(m + '\n'),
      });
      print(o.json ? JSON.stringify(r, null, 2) : formatRsvpBench(r));
      if (o.check && Object.values(r.targets).some((t) => !t.ok)) process.exitCode = 1;
    });
}
