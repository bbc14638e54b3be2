/* The generation file's layout as agents read it: the generation, the flags word, the agents'
 * deadline; an older daemon's 8-byte file grows in place; a stop writes zeros and removes the file; a policy asks
 * agents to ask at socket() only if a rule names the socket event or a script handles it. */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicy } from '../policy/load.js';
import { PolicyEngine } from '../policy/engine.js';
import { DEFAULT_POLICY_TEXT } from '../policy/default-policy.js';
import { agentFlags, DEFAULT_AGENT_TIMEOUT_MS, FLAG_ASK_AT_SOCKET, GENERATION_BYTES, GenerationFile } from './generation.js';

/** Runs f with the path of a generation file in a directory of its own, removed after. */
function inTempDir(f: (path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'qosd-gen-'));
  try {
    f(join(dir, 'agent.sock.gen'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the generation file holds the generation, the flags and the agents\' deadline; an 8-byte file grows in place; a stop writes zeros', () => inTempDir((path) => {
  writeFileSync(path, Buffer.alloc(8, 0xff)); // an older daemon's file, agents may map it
  const ino = statSync(path).ino;
  const g = new GenerationFile(path, 2500);
  const gen = g.next(FLAG_ASK_AT_SOCKET);
  const b = readFileSync(path);
  assert.equal(b.length, GENERATION_BYTES);
  assert.equal(b.readBigUInt64LE(16), 2500n, 'the deadline agents give each request, in ms');
  assert.equal(statSync(path).ino, ino, 'the same inode: mappings follow it');
  assert.equal(b.readBigUInt64LE(0), BigInt(gen), 'the first eight bytes are all an older agent reads');
  assert.equal(b.readBigUInt64LE(8), BigInt(FLAG_ASK_AT_SOCKET));
  g.next(0);
  assert.equal(readFileSync(path).readBigUInt64LE(8), 0n);
  assert.equal(readFileSync(path).readBigUInt64LE(16), 2500n, 'with every generation');
  g.next(FLAG_ASK_AT_SOCKET);
  const mapped = openSync(path, 'r'); // what an agent's mapping still reads after the stop
  g.close();
  const after = Buffer.alloc(GENERATION_BYTES);
  readSync(mapped, after, 0, GENERATION_BYTES, 0);
  closeSync(mapped);
  assert.deepEqual(after, Buffer.alloc(GENERATION_BYTES), 'agents still holding the file read "stopped"');
  assert.equal(existsSync(path), false, 'a stopped daemon leaves no generation file behind');
}));

test('given no deadline, the daemon publishes the agent\'s own default', () => inTempDir((path) => {
  const g = new GenerationFile(path);
  g.next(0);
  assert.equal(readFileSync(path).readBigUInt64LE(16), BigInt(DEFAULT_AGENT_TIMEOUT_MS));
  assert.equal(DEFAULT_AGENT_TIMEOUT_MS, Number(/#define QOS_DEFAULT_TIMEOUT_MS (\d+)/.exec(readFileSync(new URL('../../agent/agent.h', import.meta.url), 'utf8'))?.[1]), 'the agent\'s built-in default (agent/agent.h)');
  g.close();
}));

test('a stop does not remove a generation file that is not its own any more', () => inTempDir((path) => {
  const g = new GenerationFile(path);
  g.next(0);
  rmSync(path);
  writeFileSync(path, 'another daemon\'s');
  g.close();
  assert.equal(readFileSync(path, 'utf8'), 'another daemon\'s');
}));

test('agents ask at socket() when a rule names the socket event or a script handles it, not for rules without event', () => {
  const flags = (yaml: string, handlers: string[] = []) => agentFlags({ engine: new PolicyEngine(parsePolicy(yaml)), script: { handlers: new Set(handlers) } });
  assert.equal(flags('rules:\n  - { match: { event: socket, exe: "*/x" }, action: { dscp: EF } }\n'), FLAG_ASK_AT_SOCKET);
  assert.equal(flags('rules:\n  - { match: { event: [connect, socket] }, action: { dscp: EF } }\n'), FLAG_ASK_AT_SOCKET);
  assert.equal(flags('rules:\n  - { match: { exe: "*/x" }, action: { dscp: EF } }\ndefault: { dscp: CS1 }\n'), 0, 'a rule without event is decided with the socket\'s first call');
  assert.equal(flags('rules: []\n', ['Connect']), 0);
  assert.equal(flags('rules: []\n', ['Socket']), FLAG_ASK_AT_SOCKET);
  assert.equal(flags(DEFAULT_POLICY_TEXT), 0, 'the built-in policy costs programs nothing at socket()');
  const revived = PolicyEngine.revive(new PolicyEngine(parsePolicy('rules:\n  - { match: { event: socket }, action: { dscp: EF } }\n')).snapshot());
  assert.equal(agentFlags({ engine: revived }), FLAG_ASK_AT_SOCKET, 'an engine compiled in a worker knows it too');
});
