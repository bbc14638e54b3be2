/* `qos tc ...`: host traffic control through the daemon's admin API (tc/api.ts, root only):
 * flows with a FLOWSPEC and a mode on an interface, filters attaching packets to them, the
 * interface's rate and marks, and the exact tc/nft text of what is applied.
 * docs/traffic-control.md. */

import { Command } from 'commander';
import { columns } from '../../columns.js';
import { QosError } from '../../errors.js';
import { adminSocket } from '../../paths.js';
import { callJson } from '../../daemon/admin-client.js';
import { print } from '../format.js';

/** A burst of changes is one tc batch and one nft transaction; 10,000 flows take seconds. */
const TIMEOUT_MS = 120_000;

type Rec = Record<string, unknown>;
interface Common { admin: string; json?: boolean; dryRun?: boolean }

function common(c: Command, change: boolean): Command {
  c.option('--admin <path>', 'admin API socket', adminSocket()).option('--json', 'print JSON');
  if (change) c.option('--dry-run', 'print the tc, nft and ip text the change would run, and change nothing');
  return c;
}

async function send(o: Common, method: string, path: string, body: Rec, done: (r: Rec) => string): Promise<void> {
  const r = await callJson<Rec>(o.admin, method, path, { ...body, ...(o.dryRun ? { dry_run: true } : {}) }, TIMEOUT_MS);
  if (o.json) print(JSON.stringify(r, null, 2));
  else if (o.dryRun) print(String(r.plan).trimEnd());
  else print(done(r));
}

const mark = (m: unknown) => { const x = m as { dscp: number; pcp: number }; return `${x.dscp}/${x.pcp}`; };
const bit = (bytesPerS: number) => (bytesPerS >= 125e6 ? `${+(bytesPerS / 125e6).toFixed(3)}Gbit` : bytesPerS >= 125e3 ? `${+(bytesPerS / 125e3).toFixed(3)}Mbit` : `${+(bytesPerS / 125).toFixed(3)}kbit`);

/** A mark as written on the command line: DSCP/PCP, e.g. 46/5 or 8/1. */
function markOption(v: string, name: string): { dscp: number; pcp: number } {
  const m = /^(\d{1,2})\/(\d)$/.exec(v);
  if (!m || Number(m[1]) > 63 || Number(m[2]) > 7) throw new QosError('QOS_ERR_USAGE', `${name} takes DSCP/PCP (0-63/0-7), e.g. 40/5, not "${v}"`);
  return { dscp: Number(m[1]), pcp: Number(m[2]) };
}

interface FlowFlags extends Common {
  dev?: string; template?: string; flowspec?: string; service?: string; mode?: string; dscp?: string; pcp?: string; name?: string; proto?: string; ipv6?: boolean;
  tokenRate?: string; bucket?: string; peak?: string; latency?: string; jitter?: string; maxSdu?: string; minPoliced?: string;
}

function flowOptions(c: Command): Command {
  return c
    .option('--template <name>', 'start from a codec template (qos flowspec templates: G711, H263CIF...)')
    .option('--flowspec <json>', 'FLOWSPEC fields as JSON, over the template\'s: {"TokenRate":"1Mbit","TokenBucketSize":"10kB"}')
    .option('--token-rate <rate>', 'TokenRate: the rate shaped, guaranteed or policed (1Mbit, 125000 bytes/s)')
    .option('--bucket <size>', 'TokenBucketSize: the burst, bytes (10kB)')
    .option('--peak <rate>', 'PeakBandwidth: shape mode sends no faster (a TBF with a peak rate)')
    .option('--latency <time>', 'Latency: shape mode queues at most this long at the token rate (default 100ms)')
    .option('--jitter <time>', 'DelayVariation')
    .option('--max-sdu <size>', 'MaxSduSize').option('--min-policed <size>', 'MinimumPolicedSize: with it the kernel rate is the actual token rate, headers included')
    .option('--service <type>', 'ServiceType: Guaranteed, ControlledLoad, Qualitative, NetworkControl, BestEffort (any case; controlled-load)')
    .option('--mode <mode>', 'shape (packets wait until they conform), borrow (the token rate guaranteed, the excess sent demoted when the link is idle) or discard (the excess dropped); default: the service\'s (Guaranteed shape, others borrow)')
    .option('--dscp <n>', 'the conforming packets\' DSCP 0-63, over the interface\'s mapping (seed 003\'s DCLASS)')
    .option('--pcp <n>', 'their 802.1p priority 0-7 (TCLASS; written on VLAN devices)')
    .option('--name <name>', 'a name to show')
    .option('--proto <proto>', 'udp or tcp: the headers counted per packet for the actual token rate (default udp)')
    .option('--ipv6', 'the flow\'s packets are IPv6 (20 more bytes of headers per packet)');
}

function flowBody(o: FlowFlags): Rec {
  let flowspec: Rec = {};
  if (o.flowspec) {
    try { flowspec = JSON.parse(o.flowspec) as Rec; } catch (e) { throw new QosError('QOS_ERR_USAGE', `--flowspec is not JSON: ${(e as Error).message}`); }
  }
  for (const [k, field] of [['tokenRate', 'TokenRate'], ['bucket', 'TokenBucketSize'], ['peak', 'PeakBandwidth'], ['latency', 'Latency'], ['jitter', 'DelayVariation'], ['maxSdu', 'MaxSduSize'], ['minPoliced', 'MinimumPolicedSize']] as const) {
    if (o[k] !== undefined) flowspec[field] = o[k];
  }
  const body: Rec = {};
  if (Object.keys(flowspec).length) body.flowspec = flowspec;
  for (const k of ['dev', 'template', 'service', 'mode', 'name', 'proto'] as const) if (o[k] !== undefined) body[k] = o[k];
  if (o.dscp !== undefined) body.dscp = Number(o.dscp);
  if (o.pcp !== undefined) body.pcp = Number(o.pcp);
  if (o.ipv6) body.ipv6 = true;
  return body;
}

function flowLine(f: Rec): string {
  return `flow ${f.id} on ${f.dev}: ${f.service} ${f.mode} at ${bit(f.rate as number)}, conforming ${mark(f.conforming)}, non-conforming ${mark(f.nonconforming)}`;
}

export function tcCommands(program: Command): void {
  const tc = program
    .command('tc')
    .description('host traffic control (root only): flows on an interface, each with a FLOWSPEC and a mode (shape, borrow, discard) and the DSCP/802.1p of conforming and non-conforming packets; filters attach packets to a flow by 5-tuple with prefixes, ranges and wildcards (docs/traffic-control.md)');

  common(tc.command('flows').description('the interfaces under traffic control and their flows'), false)
    .action(async (o: Common) => {
      const r = await callJson<{ interfaces: Rec[]; flows: Rec[] }>(o.admin, 'GET', '/v1/tc');
      if (o.json) { print(JSON.stringify({ interfaces: r.interfaces, flows: r.flows }, null, 2)); return; }
      const lines = r.interfaces.map((i) => {
        const absent = i.absent as { since: string; why: string } | null;
        const head = `${i.dev}: ${bit(i.rate as number)}, ${i.flows} flows reserving ${bit(i.reserved as number)}; non-conforming ${mark(i.nonconforming)}${i.vlan ? '; VLAN (802.1p in its tag)' : i.dot1p ? '; 802.1p in priority tags' : ''}`;
        return absent ? `${head}\n  absent since ${absent.since} (${absent.why}): its flows and filters wait for it and are installed again when it is back` : head;
      });
      if (!r.flows.length) lines.push('no flows');
      else lines.push('', ...columns([['ID', 'DEV', 'NAME', 'SERVICE', 'MODE', 'RATE', 'DSCP/PCP', 'FILTERS', 'OWNER', 'STATE'], ...r.flows.map((f) => {
        const owner = f.owner as { kind: string; pid?: number; fd?: number };
        return [String(f.id), String(f.dev), String(f.name ?? '-'), String(f.service), String(f.mode), bit(f.rate as number), mark(f.conforming), String(f.filters), owner.kind === 'policy' ? `pid ${owner.pid} fd ${owner.fd}` : owner.kind, f.waiting ? 'waiting' : 'installed'];
      })]));
      print(lines.join('\n'));
    });

  common(tc.command('filters').description('the filters: which packets go to which flow'), false)
    .action(async (o: Common) => {
      const r = await callJson<Rec[]>(o.admin, 'GET', '/v1/tc/filters');
      if (o.json) { print(JSON.stringify(r, null, 2)); return; }
      print(r.length ? columns([['ID', 'FLOW', 'FAMILY', 'SRC', 'DST', 'PROTO', 'SPORT', 'DPORT', 'EXACT'], ...r.map((f) => [f.id, f.flow, `ipv${f.family}`, f.src, f.dst, f.proto, f.sport, f.dport, f.exact ? 'yes' : 'no'].map(String))]).join('\n') : 'no filters');
    });

  common(flowOptions(tc.command('add-flow').description('create a flow on an interface (the interface comes under traffic control with its first flow)').requiredOption('--dev <dev>', 'the interface')), true)
    .action((o: FlowFlags) => send(o, 'POST', '/v1/tc/flows', flowBody(o), flowLine));

  common(flowOptions(tc.command('modify-flow').description('change a flow\'s FLOWSPEC, mode or marks').argument('<id>', 'the flow\'s number')), true)
    .action((id: string, o: FlowFlags) => send(o, 'PUT', `/v1/tc/flows/${encodeURIComponent(id)}`, flowBody(o), flowLine));

  common(tc.command('del-flow').description('delete a flow and its filters').argument('<id>', 'the flow\'s number'), true)
    .action((id: string, o: Common) => send(o, 'DELETE', `/v1/tc/flows/${encodeURIComponent(id)}`, {}, (r) => `deleted flow ${r.deleted} and ${r.filters} filters`));

  common(tc.command('add-filter').description('attach packets to a flow: absent fields match anything; addresses as a.b.c.d, a.b.c.d/n, a.b.c.d/m.m.m.m or v6/n; ports as n or a-b. A filter naming all five exactly wins over one with wildcards; filters with wildcards on one interface must not overlap')
    .requiredOption('--flow <id>', 'the flow', (v) => Number(v))
    .option('--family <f>', '4 or 6 (default: the addresses\')')
    .option('--src <addr>', 'source address or prefix').option('--dst <addr>', 'destination address or prefix')
    .option('--proto <p>', 'tcp, udp, icmp, icmpv6, sctp, udplite or 0-255')
    .option('--sport <ports>', 'source port or range').option('--dport <ports>', 'destination port or range'), true)
    .action((o: Common & Rec) => send(o, 'POST', '/v1/tc/filters', Object.fromEntries(['flow', 'family', 'src', 'dst', 'proto', 'sport', 'dport'].filter((k) => o[k] !== undefined).map((k) => [k, o[k]])),
      (r) => `filter ${r.id}: ${r.src} -> ${r.dst} ${r.proto} ${r.sport} -> ${r.dport} to flow ${r.flow}${r.exact ? ' (exact)' : ''}`));

  common(tc.command('del-filter').description('delete a filter').argument('<id>', 'the filter\'s number'), true)
    .action((id: string, o: Common) => send(o, 'DELETE', `/v1/tc/filters/${encodeURIComponent(id)}`, {}, (r) => `deleted filter ${r.deleted}`));

  common(tc.command('set-interface').description('set an interface\'s link rate (a veth or tunnel has none worth using) and marks; it comes under traffic control if it was not')
    .argument('<dev>', 'the interface')
    .option('--rate <rate>', 'the link rate: 100Mbit, 1Gbit')
    .option('--mark <service=dscp/pcp...>', 'conforming mark of a service type, e.g. ControlledLoad=26/4 (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--nonconforming <dscp/pcp>', 'the mark of non-conforming (demoted) packets (default 8/1: CS1, 802.1p background)')
    .option('--dot1p <on|off>', 'write each flow\'s 802.1p in a priority tag (VLAN id 0) on the interface\'s frames (default off; a VLAN device carries it in its own tag)'), true)
    .action((dev: string, o: Common & { rate?: string; mark?: string[]; nonconforming?: string; dot1p?: string }) => {
      const body: Rec = {};
      if (o.rate !== undefined) body.rate = o.rate;
      if (o.mark) body.marks = Object.fromEntries(o.mark.map((m) => { const [k, v] = m.split('='); return [k, markOption(v ?? '', '--mark')]; }));
      if (o.nonconforming !== undefined) body.nonconforming = markOption(o.nonconforming, '--nonconforming');
      if (o.dot1p !== undefined) {
        if (o.dot1p !== 'on' && o.dot1p !== 'off') throw new QosError('QOS_ERR_USAGE', `--dot1p takes on or off, not "${o.dot1p}"`);
        body.dot1p = o.dot1p === 'on';
      }
      return send(o, 'PUT', `/v1/tc/interfaces/${encodeURIComponent(dev)}`, body, (r) => `${r.dev}: ${bit(r.rate as number)}, non-conforming ${mark(r.nonconforming)}`);
    });

  common(tc.command('plan').description('what the kernel is given for the current flows and filters, as the exact tc -batch, nft -f and ip text (a change\'s own text: --dry-run on it)'), false)
    .action(async (o: Common) => {
      const r = await callJson<{ text: string }>(o.admin, 'GET', '/v1/tc/plan');
      print(o.json ? JSON.stringify(r, null, 2) : r.text.trimEnd());
    });
}
