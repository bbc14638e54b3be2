/* `qos fleet push|push-rules|status|history|rollback`: the fleet's documents in etcd and its
 * nodes' status (fleet/admin.ts, docs/fleet.md). Every command takes the same --fleet endpoints
 * (or QOSD_FLEET), --fleet-prefix and TLS files. */

import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { columns } from '../../columns.js';
import { exitCodeFor, QosError } from '../../errors.js';
import { print } from '../format.js';
import { duration, positiveInt } from '../options.js';
import { registerRolesCommand } from '../../fleet/roles.js';

interface Conn { fleet?: string; fleetPrefix: string; fleetCa?: string; fleetCert?: string; fleetKey?: string; json?: boolean }

function withConnection(c: Command): Command {
  return c
    .option('--fleet <url>', 'the etcd endpoints, etcd://HOST:PORT[,HOST:PORT...] (env QOSD_FLEET)')
    .option('--fleet-prefix <prefix>', 'the key prefix of the fleet (env QOSD_FLEET_PREFIX)', process.env.QOSD_FLEET_PREFIX ?? '/qosd')
    .option('--fleet-ca <file>', 'TLS: the CA of the etcd servers\' certificates (https)')
    .option('--fleet-cert <file>', 'TLS: this client\'s certificate (with --fleet-key)')
    .option('--fleet-key <file>', 'TLS: this client\'s private key')
    .option('--json', 'print JSON');
}

/** Runs fn with a client of the fleet; etcd failures become clear errors, printed as JSON with --json. */
async function withClient<T>(o: Conn, what: string, fn: (client: import('etcd3').Etcd3, prefix: string) => Promise<T>): Promise<void> {
  const { fleetClient, fleetError } = await import('../../fleet/connect.js');
  const { normPrefix } = await import('../../fleet/keys.js');
  const fleet = o.fleet ?? process.env.QOSD_FLEET;
  if (!fleet) throw new QosError('QOS_ERR_USAGE', 'which fleet? give --fleet etcd://HOST:PORT[,HOST:PORT...] or set QOSD_FLEET');
  const prefix = normPrefix(o.fleetPrefix);
  const client = fleetClient({ fleet, ca: o.fleetCa, cert: o.fleetCert, key: o.fleetKey });
  try {
    await fn(client, prefix);
  } catch (e) {
    const err = fleetError(e, `${what} (${fleet})`);
    if (!o.json) throw err;
    print(JSON.stringify({ ok: false, error: err.toJSON(), ...((e as { detail?: object }).detail ?? {}) }, null, 2));
    process.exitCode = exitCodeFor(err);
  } finally {
    client.close();
  }
}

/** --group G or --node N (or neither: the fleet), as a target of `kind`. */
function targetOf(kind: 'policy' | 'rules', o: { group?: string; node?: string }, checkName: (what: string, n: string) => string): import('../../fleet/keys.js').Target {
  if (o.group !== undefined && o.node !== undefined) throw new QosError('QOS_ERR_USAGE', '--group and --node: one target at a time');
  if (o.group !== undefined) return { kind, level: 'group', name: checkName('--group', o.group) };
  if (o.node !== undefined) return { kind, level: 'node', name: checkName('--node', o.node) };
  return { kind, level: 'fleet' };
}

/** The document's text, checked here before it reaches etcd (every node checks it again). */
async function checked(kind: 'policy' | 'rules', file: string): Promise<string> {
  let text: string;
  try { text = await readFile(file, 'utf8'); } catch (e) { throw new QosError('QOS_ERR_POLICY_IO', `cannot read ${file}: ${(e as Error).message}`); }
  if (kind === 'policy') {
    const { parsePolicy } = await import('../../policy/load.js');
    if (parsePolicy(text, file).script !== undefined) throw new QosError('QOS_ERR_POLICY_INVALID', `${file}: a fleet policy cannot name a script file (nodes would not have it): push rules only, or install the script on each node and run it with --policy`);
    const { checkPolicyOffLoop } = await import('../../policy/compile.js');
    await checkPolicyOffLoop(text, resolve(file));
  } else {
    const { parseRuleSet } = await import('../../kernel/manager.js');
    parseRuleSet(text, file);
  }
  return text;
}

type PushOpts = Conn & { group?: string; node?: string; canary?: string; timeout?: number; wait?: boolean };

function pushCommand(fleet: Command, name: string, kind: 'policy' | 'rules', what: string): void {
  withConnection(fleet.command(name)
    .description(`check ${what} and push it to the fleet's nodes (the whole fleet, a group, or one node)`)
    .argument('<file>')
    .option('--group <G>', 'the group\'s document: nodes started with --groups G run it unless they have their own')
    .option('--node <N>', 'one node\'s document, above its groups\' and the fleet\'s')
    .option('--canary <share>', 'a staged roll-out: first to this share of the nodes that would run it (e.g. 10%, at least one), then, once each reports it applied, to the target; if one refuses it, stop and roll those nodes back')
    .option('--timeout <time>', 'how long to wait for nodes to report (--canary, --wait; default 60s)', (v) => duration(v, '--timeout'))
    .option('--wait', 'wait until every node that runs it reports it applied (exit 65 if one refuses it)'))
    .action(async (file: string, o: PushOpts) => {
      const { checkName, parseShare } = await import('../../fleet/keys.js');
      const target = targetOf(kind, o, checkName);
      const share = o.canary === undefined ? undefined : parseShare(o.canary);
      if (share !== undefined && target.level === 'node') throw new QosError('QOS_ERR_USAGE', '--canary with --node: a roll-out to one node has no share to try first');
      const text = await checked(kind, file);
      await withClient(o, `push ${file}`, async (client, prefix) => {
        const { push } = await import('../../fleet/admin.js');
        const r = await push(client, prefix, target, text, { canary: share, timeoutMs: (o.timeout ?? 60) * 1000, wait: o.wait });
        if (o.json) { print(JSON.stringify({ ok: true, ...r }, null, 2)); return; }
        const lines = [`${file}: written to ${r.key} at revision ${r.revision}`];
        if (r.canary) lines.unshift(`canary: ${r.canary.nodes.join(', ')} applied it (revision ${r.canary.key_revision})`);
        if (r.results) lines.push(`${r.results.length} node(s) applied it`);
        print(lines.join('\n'));
      });
    });
}

/** Registers `qos fleet` and its subcommands. */
export function fleetCommands(program: Command): void {
  const fleet = program.command('fleet').description('distribute policy and kernel rule sets to many hosts through etcd (docs/fleet.md)');
  pushCommand(fleet, 'push', 'policy', 'a policy file');
  pushCommand(fleet, 'push-rules', 'rules', 'a kernel rule-set file (as qos rules export writes it)');

  withConnection(fleet.command('status').description('each node: what it runs, whether it is behind or refused what it should run, its last error')).action(async (o: Conn) => {
    await withClient(o, 'status', async (client, prefix) => {
      const { readFleet, nodeView } = await import('../../fleet/admin.js');
      const view = await readFleet(client, prefix);
      const nodes = view.nodes.map((n) => nodeView(prefix, view.docs, n));
      const docs = [...view.docs.values()].map((d) => ({ key: d.key, revision: d.revision, bytes: Buffer.byteLength(d.value) }));
      if (o.json) { print(JSON.stringify({ revision: view.revision, prefix, documents: docs, nodes }, null, 2)); return; }
      const short = (v: { key: string; revision: number } | null) => (v ? `${v.key.slice(prefix.length + 1)}@${v.revision}` : '-');
      const counts = nodes.reduce<Record<string, number>>((a, n) => ({ ...a, [n.state]: (a[n.state] ?? 0) + 1 }), {});
      print([
        `revision ${view.revision}, ${docs.length} document(s), ${nodes.length} node(s)${nodes.length ? `: ${Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(', ')}` : ''}`,
        ...columns([['NODE', 'GROUPS', 'STATE', 'POLICY', 'RULES', 'AGENTS', 'DEC/S', 'LAST ERROR'],
          ...nodes.map((n) => [n.node, n.groups.join(',') || '-', n.state, short(n.kinds.policy.applied), short(n.kinds.rules.applied), String(n.agents), String(n.decisions_per_s), n.last_error ?? ''])]),
      ].join('\n'));
    });
  });

  withConnection(fleet.command('history').description('the changes qos fleet made (push, canary, rollback), newest first, with the revision of each')
    .option('--limit <n>', 'how many', (v) => positiveInt(v, '--limit'), 20)).action(async (o: Conn & { limit: number }) => {
    await withClient(o, 'history', async (client, prefix) => {
      const { history } = await import('../../fleet/admin.js');
      const h = await history(client, prefix, o.limit);
      if (o.json) { print(JSON.stringify(h, null, 2)); return; }
      print([
        ...columns([['REVISION', 'ACTION', 'AT', 'BY', 'CHANGES'], ...h.entries.map((e) => [String(e.revision), e.action, e.at, e.by,
          e.changes.map((c) => `${c.op} ${c.key.slice(prefix.length + 1)}${c.sha256 ? ` (${c.sha256.slice(0, 12)})` : ''}`).join(', ')])]),
        ...(h.compacted !== null ? [`(etcd compacted its history: nothing before revision ${h.compacted + 1})`] : []),
      ].join('\n'));
    });
  });

  withConnection(fleet.command('rollback').description('put every document back as it was at an earlier revision (qos fleet history lists them); documents made since are deleted')
    .argument('<revision>')).action(async (rev: string, o: Conn) => {
    const revision = positiveInt(rev, 'the revision');
    await withClient(o, `rollback to ${revision}`, async (client, prefix) => {
      const { rollback } = await import('../../fleet/admin.js');
      const r = await rollback(client, prefix, revision);
      if (o.json) { print(JSON.stringify({ ok: true, ...r, changes: r.changes.map(({ key, op }) => ({ key, op })) }, null, 2)); return; }
      print(r.revision === null ? `every document is as it was at revision ${revision}: nothing to do`
        : `documents as at revision ${revision}, written at revision ${r.revision}: ${r.changes.map((c) => `${c.op} ${c.key}`).join(', ')}`);
    });
  });
  registerRolesCommand(fleet);
}
