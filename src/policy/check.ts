/* The one policy checker: what `qos policy check FILE` runs, and what the daemon runs for
 * `POST /v1/policy/check` and before `POST /v1/policy/apply` (in a worker thread, compile.ts).
 * The text is validated whole (every problem with line and column), the script it names is
 * read relative to the policy's file and compiled in the daemon's sandbox. */

import type { HandlerName } from '../script/js-sandbox.js';
import { checkScript } from '../script/check.js';
import { policyFromText, readPolicyText, type PolicyScript } from './load.js';
import type { PolicyDoc } from './schema.js';

export interface CheckedPolicy { doc: PolicyDoc; text: string; script: PolicyScript | null; handlers: HandlerName[] }

/** Checks policy text as the file at `path`; throws QOS_ERR_POLICY_INVALID with every problem.
 * `anyPath`: the script is read wherever it is (the CLI); otherwise only where the daemon
 * trusts it (secure-path.ts), as a reload would. */
export async function checkPolicyText(text: string, path: string, o: { anyPath?: boolean } = {}): Promise<CheckedPolicy> {
  const { doc, script } = await policyFromText(text, path, o);
  const handlers = script ? await checkScript(script) : [];
  return { doc, text, script, handlers };
}

/** Reads the file at `path` and checks it (checkPolicyText). */
export async function checkPolicyFile(path: string, o: { anyPath?: boolean } = {}): Promise<CheckedPolicy> {
  return checkPolicyText(await readPolicyText(path, o), path, o);
}
