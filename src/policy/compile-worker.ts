/* The worker of compile.ts: for each job it is sent, loads and compiles a policy file, or
 * checks a policy text (policy/check.ts, as `qos policy check` does), and posts the answer. */

import { parentPort } from 'node:worker_threads';
import { QosError } from '../errors.js';
import { checkPolicyText } from './check.js';
import type { CheckAnswer, LoadAnswer, PolicyJob } from './compile.js';
import { PolicyEngine } from './engine.js';
import { loadPolicyFile } from './load.js';

async function answer(job: PolicyJob): Promise<LoadAnswer | CheckAnswer> {
  try {
    if (job.kind === 'load') {
      const { doc, script, text } = await loadPolicyFile(job.path);
      return { ok: true, doc, script, text, engine: new PolicyEngine(doc).snapshot() };
    }
    const { doc, handlers } = await checkPolicyText(job.text, job.path);
    return { ok: true, rules: doc.rules.length, handlers };
  } catch (e) {
    const err = e instanceof QosError ? e : new QosError('QOS_ERR_INTERNAL', String(e));
    return { ok: false, code: err.code, message: err.message, problems: err.problems };
  }
}

// one job at a time: compile.ts sends the next only once this one is answered
parentPort!.on('message', (job: PolicyJob) => { void answer(job).then((a) => parentPort!.postMessage(a)); });
