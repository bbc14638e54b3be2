/* The worker of compile.ts: loads and compiles one policy file, posts a LoadAnswer, ends. */

import { parentPort, workerData } from 'node:worker_threads';
import { QosError } from '../errors.js';
import type { LoadAnswer } from './compile.js';
import { PolicyEngine } from './engine.js';
import { loadPolicyFile } from './load.js';

const { path } = workerData as { path: string };
let answer: LoadAnswer;
try {
  const { doc, script } = await loadPolicyFile(path);
  answer = { ok: true, doc, script, engine: new PolicyEngine(doc).snapshot() };
} catch (e) {
  const err = e instanceof QosError ? e : new QosError('QOS_ERR_INTERNAL', String(e));
  answer = { ok: false, code: err.code, message: err.message, problems: err.problems };
}
parentPort!.postMessage(answer);
