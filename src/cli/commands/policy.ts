/* `qos policy check` and `qos policy default`: policy files, without a daemon. `qos policy
 * show|apply|versions|restore`: the running daemon's policy, through its admin API
 * (daemon/policy-api.ts; the dashboard's Policy page uses the same routes). */

import { Command } from 'commander';
import { exitCodeFor, QosError, type Problem } from '../../errors.js';
import { adminSocket, DEFAULT_POLICY_FILE } from '../../paths.js';
import { print } from '../format.js';
import { positiveInt } from '../options.js';

/** An apply checks the text and loads it in worker threads: longer than a status read. */
const APPLY_TIMEOUT_MS = 120_000;

interface Applied { ok: true; version: number; rules: number; generation: number; sha256: string; restored?: number }

/** Runs an apply or restore: prints its answer, or with --json its error as JSON (exit status
 * from the error's code); problems in the text are named by `file` (the API gives them
 * without a file: they are at a line and column of the text sent). */
async function applying(o: { json?: boolean }, file: string | undefined, call: () => Promise<Applied>): Promise<void> {
  try {
    const r = await call();
    print(o.json ? JSON.stringify(r, null, 2)
      : `${r.restored !== undefined ? `version ${r.restored} restored` : 'policy applied'}: ${r.rules} rules, generation ${r.generation}, sha256 ${r.sha256}\n`
        + `the policy it replaced is kept as version ${r.version} (qos policy restore ${r.version} puts it back)`);
  } catch (e) {
    if (!(e instanceof QosError)) throw e;
    const named = new QosError(e.code, e.message, e.problems.map((p: Problem) => (p.file === undefined && file !== undefined ? { file, ...p } : p)));
    if (!o.json) throw named;
    print(JSON.stringify({ ok: false, error: named.toJSON() }, null, 2));
    process.exitCode = exitCodeFor(named);
  }
}

/** Registers `qos policy` and its subcommands. */
export function policyCommands(program: Command): void {
  const policy = program.command('policy').description('work with policy files');
  policy
    .command('check')
    .description('validate a policy file; prints every error with line and column')
    .argument('<file>')
    .option('--json', 'print JSON')
    .action(async (file: string, o: { json?: boolean }) => {
      const { checkPolicyFile } = await import('../../policy/check.js');
      try {
        const { doc, script, handlers } = await checkPolicyFile(file, { anyPath: true });
        const { policyPlacement } = await import('../../kernel/manager.js');
        const { ebpfEnforcement } = await import('../../ebpf/rules.js');
        const { systemNames } = await import('../../kernel/rules.js');
        const { resolvePatterns } = await import('../../ebpf/resolve.js');
        const { placements } = policyPlacement(doc);
        const ebpf = ebpfEnforcement(doc, systemNames(), resolvePatterns);
        const enforcement = placements.map((p, i) => ({ ...p, ...ebpf[i]! }));
        const scriptText = script ? `, script ${script.path} (${handlers.join(', ')})` : '';
        const where = enforcement.map((p) => {
          const paths = ['agent', ...(p.ebpf ? [`eBPF (${p.ebpf_files!.length} file${p.ebpf_files!.length === 1 ? '' : 's'} now${p.ebpf_notes?.length ? `: ${p.ebpf_notes.join('; ')}` : ''})`] : []), ...(p.where === 'agent+kernel' ? ['nftables'] : [])];
          const not = [...(p.ebpf ? [] : [`eBPF: ${p.ebpf_reason}`]), ...(p.where === 'agent+kernel' ? [] : [`nftables: ${p.reason}`])];
          return `  ${p.name ?? `rule ${p.position}`}: ${paths.join(', ')}${not.length ? `; not ${not.join('; ')}` : ''}`;
        });
        print(o.json
          ? JSON.stringify({ ok: true, file, rules: doc.rules.length, default: doc.default ?? null, script: script ? { file: script.path, handlers } : null, enforcement })
          : [`${file}: ok, ${doc.rules.length} rules${doc.default ? ', with a default (agent only)' : ''}${scriptText}`, '  (each rule: the paths that enforce it; the agent decides first where it runs, then eBPF, then nftables: docs/ebpf.md)', ...where].join('\n'));
      } catch (e) {
        if (o.json && e instanceof QosError) {
          print(JSON.stringify({ ok: false, file, error: e.toJSON() }));
          process.exitCode = exitCodeFor(e);
          return;
        }
        throw e;
      }
    });
  policy
    .command('show')
    .description('print the running policy\'s text, after comment lines saying where it is from and whether the file on disk differs')
    .option('--admin <path>', 'admin API socket', adminSocket())
    .option('--json', 'print JSON: source, origin, editable, text, sha256, loaded_at, generation, rules, last_error, file_differs')
    .action(async (o: { admin: string; json?: boolean }) => {
      const { callJson } = await import('../../daemon/admin-client.js');
      const p = await callJson<{ source: string; origin: string; editable: boolean; text: string; sha256: string; loaded_at: string; generation: number; rules: number; file_differs: boolean; last_error: { at: string; message: string } | null }>(o.admin, 'GET', '/v1/policy');
      if (o.json) return print(JSON.stringify(p, null, 2));
      const head = [
        `# ${p.source} (${p.origin}): ${p.rules} rules, generation ${p.generation}, loaded ${p.loaded_at}`,
        `# sha256 ${p.sha256}${p.editable ? '' : '; the built-in policy: start the daemon with --policy FILE to edit it'}`,
        ...(p.file_differs ? [`# the file on disk is not what runs: a change to it was refused${p.last_error ? ` (${p.last_error.at}: ${p.last_error.message.split('\n')[0]})` : ''}`] : []),
      ];
      process.stdout.write(`${head.join('\n')}\n${p.text}${p.text.endsWith('\n') ? '' : '\n'}`);
    });
  policy
    .command('apply')
    .description('replace the running policy with FILE: checked first (as qos policy check), refused with every problem if bad; the policy it replaces is kept as a version')
    .argument('<file>')
    .option('--admin <path>', 'admin API socket', adminSocket())
    .option('--base <sha256>', 'refuse unless the running policy is still this one (its sha256, as qos policy show prints it)')
    .option('--json', 'print JSON')
    .action(async (file: string, o: { admin: string; base?: string; json?: boolean }) => {
      const { readPolicyText } = await import('../../policy/load.js');
      const { callJson } = await import('../../daemon/admin-client.js');
      const text = await readPolicyText(file, { anyPath: true });
      await applying(o, file, () => callJson<Applied>(o.admin, 'POST', '/v1/policy/apply', { text, ...(o.base ? { base_sha256: o.base } : {}) }, APPLY_TIMEOUT_MS));
    });
  policy
    .command('versions')
    .description('list the earlier policies the daemon kept (newest first), each restorable with qos policy restore N')
    .option('--admin <path>', 'admin API socket', adminSocket())
    .option('--json', 'print JSON')
    .action(async (o: { admin: string; json?: boolean }) => {
      const { callJson } = await import('../../daemon/admin-client.js');
      const { columns } = await import('../../columns.js');
      const r = await callJson<{ dir: string; versions: { version: number; saved_at: string; size: number; sha256: string; by: string; uid: number }[] }>(o.admin, 'GET', '/v1/policy/versions');
      if (o.json) return print(JSON.stringify(r, null, 2));
      if (!r.versions.length) return print(`no earlier policy kept yet (${r.dir}): each qos policy apply or restore keeps the one it replaces`);
      print(columns([['VERSION', 'SAVED', 'BYTES', 'SHA256', 'BY'], ...r.versions.map((v) => [String(v.version), v.saved_at, String(v.size), v.sha256.slice(0, 12), `${v.by} (uid ${v.uid})`])]).join('\n'));
    });
  policy
    .command('restore')
    .description('put back an earlier policy (qos policy versions): checked again as an apply, and the policy it replaces kept as a version')
    .argument('<n>', 'the version number', (v) => positiveInt(v, 'the version'))
    .option('--admin <path>', 'admin API socket', adminSocket())
    .option('--base <sha256>', 'refuse unless the running policy is still this one')
    .option('--json', 'print JSON')
    .action(async (n: number, o: { admin: string; base?: string; json?: boolean }) => {
      const { callJson } = await import('../../daemon/admin-client.js');
      await applying(o, `version ${n}`, () => callJson<Applied>(o.admin, 'POST', `/v1/policy/versions/${n}/restore`, o.base ? { base_sha256: o.base } : {}, APPLY_TIMEOUT_MS));
    });
  policy
    .command('default')
    .description(`print the built-in policy (the daemon's when given no --policy and ${DEFAULT_POLICY_FILE} is absent)`)
    .action(async () => {
      const { DEFAULT_POLICY_TEXT } = await import('../../policy/default-policy.js');
      process.stdout.write(DEFAULT_POLICY_TEXT);
    });
}
