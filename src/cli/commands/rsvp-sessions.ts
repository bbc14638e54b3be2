/* `qos rsvp sessions|open|close|activate|deactivate|events`: the daemon's RSVP manager (seed
 * 001's RSVP Manager Module; docs/rsvp.md, "Sessions" and "Status notifications"). */

import type { Command } from 'commander';
import { callJson, stream } from '../../daemon/admin-client.js';
import { QosError } from '../../errors.js';
import { adminSocket } from '../../paths.js';
import { print } from '../format.js';

type Rec = Record<string, unknown>;
const collect = (v: string, prev: string[]) => [...prev, v];

function sessionText(s: Rec): string {
  const sess = s.session as Rec;
  const where = `${String(sess.destination)} ${Number(sess.protocol) === 6 ? 'tcp' : 'udp'}/${String(sess.port)}`;
  const prog = s.program ? ` for ${String((s.program as Rec).exe)} pid ${String((s.program as Rec).pid)}` : '';
  const last = s.last ? ` — ${String((s.last as Rec).code)}: ${String((s.last as Rec).reason)}` : '';
  const marked = s.marked ? ` marked (tc flow ${String((s.marked as Rec).flow)})` : '';
  return `${String(s.id)} ${String(s.role)} ${s.active ? 'active' : 'inactive'} ${String(s.origin)} uid ${String(s.uid)} ${where}${prog}${marked}${last}`;
}

export function notificationText(n: Rec): string {
  const sess = n.session as Rec;
  const prog = n.program ? ` ${String((n.program as Rec).exe)} pid ${String((n.program as Rec).pid)}` : '';
  return `${String(n.seq)} ${String(n.at)} ${String(n.code)} ${n.id === null ? '-' : `session ${String(n.id)}`} ${String(sess.destination)}/${String(sess.port)}${prog}: ${String(n.reason)}`;
}

/** Registers the manager's commands under `qos rsvp`. */
export function addRsvpSessions(rsvp: Command): void {
  rsvp
    .command('sessions')
    .description('the RSVP sessions this host takes part in (yours; root sees all): sender or receiver, active (refreshing Path or Resv) or inactive, made by an administrator, by the policy\'s reserve action for a program\'s socket, or by AutoRESV; whether the flow is marked (its reservation installed here), and the last status notification')
    .option('--admin <path>', 'admin API socket', adminSocket())
    .option('--json', 'print JSON')
    .action(async (o: { admin: string; json?: boolean }) => {
      const r = await callJson<Rec[]>(o.admin, 'GET', '/v1/rsvp/sessions');
      print(o.json ? JSON.stringify(r, null, 2) : r.length ? r.map(sessionText).join('\n') : 'no RSVP sessions');
    });

  rsvp
    .command('open')
    .description('register an RSVP session and (unless --inactive) start signalling. As sender: Path every R toward the destination with your traffic (--rate, --bucket...). As receiver, raw mode: the whole FLOWSPEC (--rate... --R --S); support mode (seed 001): only the bandwidth r the flow needs and, for Guaranteed, the delay W — the rest is loaded from the sender\'s Path and R follows from the delay bound with the path\'s Ctot and Dtot; the Resv goes as Path state arrives (AutoRESV). Find a running program\'s 5-tuple with `qos rsvp connections`.')
    .requiredOption('--role <sender|receiver>', 'this host\'s part in the session')
    .requiredOption('--dest <address>', 'the session\'s destination address (the receiver\'s)')
    .requiredOption('--port <n>', 'the session\'s destination port')
    .option('--proto <udp|tcp>', 'the session\'s protocol', 'udp')
    .option('--sport <n>', 'sender: this sender\'s source port')
    .option('--source <address>', 'sender: its address (default: the source of the route to the destination)')
    .option('--rate <rate>', 'sender: the token rate r (2Mbit); receiver: gives the raw FLOWSPEC')
    .option('--bucket <size>', 'the bucket depth b, bytes (default max(M, r/10))')
    .option('--peak <rate>', 'the peak rate p (default: unlimited)')
    .option('--min <size>', 'minimum policed unit (m), bytes (default 64)')
    .option('--max <size>', 'maximum packet size (M), bytes (default 1500)')
    .option('--service <cl|gs>', 'receiver: Controlled Load or Guaranteed', 'cl')
    .option('--mode <raw|support>', 'receiver: raw (every parameter) or support (--bandwidth, --delay; default when no --rate)')
    .option('--bandwidth <rate>', 'receiver, support mode: the rate r the flow needs (default: the sender\'s)')
    .option('--delay <time>', 'receiver, support mode, Guaranteed: the end-to-end delay W to keep (50ms)')
    .option('--R <rate>', 'receiver, raw Guaranteed: the rate reserved (default: --rate)')
    .option('--S <us>', 'receiver, raw Guaranteed: the slack term, microseconds')
    .option('--style <FF|SE|WF>', 'receiver: reservation style (default: WF for one sender, FF for several)')
    .option('--sender <address:port>', 'receiver: a sender the reservation is for; repeat (default: every sender)', collect, [] as string[])
    .option('--no-auto-resv', 'receiver with --rate: send the Resv at once rather than as Path state arrives')
    .option('--confirm', 'receiver: ask for a ResvConf (REQUEST_CONFIRMED)')
    .option('--inactive', 'register only: no Path or Resv until `qos rsvp activate ID`')
    .option('--user <name>', 'root only: the user it is for (default: yours, from the kernel)')
    .option('--app <name>', 'root only: the application it is for (POLICY_DATA AUTH_APP)')
    .option('--admin <path>', 'admin API socket', adminSocket())
    .option('--json', 'print JSON')
    .action(async (o: Rec & { role: string; admin: string; json?: boolean; sender: string[]; autoResv: boolean }) => {
      if (o.role !== 'sender' && o.role !== 'receiver') throw new QosError('QOS_ERR_USAGE', `--role is sender or receiver, not "${String(o.role)}"`);
      const pick = (k: string, as = k) => (o[k] === undefined ? {} : { [as]: o[k] });
      const body: Rec = {
        role: o.role, destination: o.dest, port: o.port, protocol: o.proto, active: !o.inactive,
        ...pick('rate'), ...pick('bucket'), ...pick('peak'), ...pick('min'), ...pick('max'), ...pick('user'), ...pick('app'),
      };
      if (o.role === 'sender') {
        if (o.sport === undefined || o.rate === undefined) throw new QosError('QOS_ERR_USAGE', 'a sender session needs --sport and --rate (its traffic: the SENDER_TSPEC)');
        Object.assign(body, { sport: o.sport, ...pick('source') });
      } else {
        Object.assign(body, { service: o.service, senders: o.sender, confirm: o.confirm === true, ...pick('mode'), ...pick('bandwidth'), ...pick('delay'), ...pick('R'), ...pick('S'), ...pick('style') });
        if (o.rate !== undefined && o.autoResv === false) body.auto_resv = false;
      }
      const r = await callJson<Rec>(o.admin, 'POST', '/v1/rsvp/sessions', body);
      print(o.json ? JSON.stringify(r, null, 2) : `session ${sessionText(r)}`);
    });

  for (const [name, what, method, verb] of [
    ['close', 'deactivate and forget a session', 'DELETE', ''],
    ['activate', 'start a registered session\'s signalling (Path or Resv, refreshed every R)', 'POST', '/activate'],
    ['deactivate', 'stop a session\'s signalling (PathTear or ResvTear); it stays registered', 'POST', '/deactivate'],
  ] as const) {
    rsvp
      .command(name)
      .description(what)
      .argument('<id>', 'the session\'s number (qos rsvp sessions)')
      .option('--admin <path>', 'admin API socket', adminSocket())
      .option('--json', 'print JSON')
      .action(async (id: string, o: { admin: string; json?: boolean }) => {
        const r = await callJson<Rec>(o.admin, method, `/v1/rsvp/sessions/${encodeURIComponent(id)}${verb}`, {});
        print(o.json ? JSON.stringify(r, null, 2) : name === 'close' ? `session ${id} closed` : `session ${sessionText(r)}`);
      });
  }

  rsvp
    .command('events')
    .description('status notifications, as GQoS\'s FD_QOS codes (seed 002): RECEIVERS, SENDERS, NO_RECEIVERS, NO_SENDERS, REQUEST_CONFIRMED, ADMISSION_FAILURE, POLICY_FAILURE, BAD_STYLE, BAD_OBJECT, TRAFFIC_CTRL_ERROR, GENERIC_ERROR, each with its session, the program it is for and the reason; --follow keeps streaming')
    .option('--after <n>', 'only those after this number', '0')
    .option('-f, --follow', 'keep streaming new ones')
    .option('--admin <path>', 'admin API socket', adminSocket())
    .option('--json', 'one JSON object per line')
    .action(async (o: { after: string; follow?: boolean; admin: string; json?: boolean }) => {
      if (!/^\d{1,12}$/.test(o.after)) throw new QosError('QOS_ERR_USAGE', `--after is a notification number, not "${o.after}"`);
      await stream(o.admin, `/v1/rsvp/notifications?after=${o.after}${o.follow ? '&follow=1' : ''}`, (line) => {
        if (!line.trim()) return;
        print(o.json ? line : notificationText(JSON.parse(line) as Rec));
      });
    });
}
