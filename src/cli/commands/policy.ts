/* `qos policy check` and `qos policy default`: policy files, without a daemon. */

import { Command } from 'commander';
import { exitCodeFor, QosError } from '../../errors.js';
import { DEFAULT_POLICY_FILE } from '../../paths.js';
import { print } from '../format.js';

/** Registers `qos policy` and its subcommands. */
export function policyCommands(program: Command): void {
  const policy = program.command('policy').description('work with policy files');
  policy
    .command('check')
    .description('validate a policy file; prints every error with line and column')
    .argument('<file>')
    .option('--json', 'print JSON')
    .action(async (file: string, o: { json?: boolean }) => {
      const { loadPolicyFile } = await import('../../policy/load.js');
      const { checkScript } = await import('../../script/check.js');
      try {
        const { doc, script } = await loadPolicyFile(file, { anyPath: true });
        const handlers = script ? await checkScript(script) : [];
        const { policyPlacement } = await import('../../kernel/manager.js');
        const { placements } = policyPlacement(doc);
        const scriptText = script ? `, script ${script.path} (${handlers.join(', ')})` : '';
        const where = placements.map((p) => `  ${p.name ?? `rule ${p.position}`}: ${p.where === 'agent' ? `agent only (${p.reason})` : 'agent and kernel'}`);
        print(o.json
          ? JSON.stringify({ ok: true, file, rules: doc.rules.length, default: doc.default ?? null, script: script ? { file: script.path, handlers } : null, enforcement: placements })
          : [`${file}: ok, ${doc.rules.length} rules${doc.default ? ', with a default (agent only)' : ''}${scriptText}`, ...where].join('\n'));
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
    .command('default')
    .description(`print the built-in policy (the daemon's when given no --policy and ${DEFAULT_POLICY_FILE} is absent)`)
    .action(async () => {
      const { DEFAULT_POLICY_TEXT } = await import('../../policy/default-policy.js');
      process.stdout.write(DEFAULT_POLICY_TEXT);
    });
}
