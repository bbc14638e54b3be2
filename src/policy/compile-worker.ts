/* The worker of compile.ts: loads and compiles one policy file, or checks one policy text
 * (policy/check.ts, as `qos policy check` does), posts the answer, ends. */

import { parentPort, workerData } from 'node:worker_threads';
import { QosError } from '../errors.js';
import { checkPolicyText } from './check.js';
import type { CheckAnswer, LoadAnswer, PolicyJob } from './compile.js';
import { PolicyEngine } from './engine.js';
import { loadPolicyFile } from './load.js';

const job = workerData as PolicyJob;
let answer: LoadAnswer | CheckAnswer;
try {
  if (job.kind === 'load') {
    const { doc, script, text } = await loadPolicyFile(job.path);
    answer = { ok: true, doc, script, text, engine: new PolicyEngine(doc).snapshot() };
  } else {
    const { doc, handlers } = await checkPolicyText(job.text, job.path);
    answer = { ok: true, rules: doc.rules.length, handlers };
  }
} catch (e) {
  const err = e instanceof QosError ? e : new QosError('QOS_ERR_INTERNAL', String(e));
  answer = { ok: false, code: err.code, message: err.message, problems: err.problems };
}
parentPort!.postMessage(answer);
