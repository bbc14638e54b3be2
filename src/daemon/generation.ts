/* The policy generation, published for agents in a small file beside the agent socket
 * (`<socket>.gen`) that agents map read-only: the generation (eight bytes, little-endian),
 * then a flags word (eight bytes) saying what the running policy asks of agents, then the
 * deadline in ms an agent gives each request (`--agent-timeout-ms`; eight bytes), which a
 * program given no QOSD_TIMEOUT_MS takes, and a privileged program always. An agent
 * reuses a cached decision only while the number it was given with it (`CACHE gen`) is still
 * the one in the file, so a reload or a stop invalidates every agent's cache with one write,
 * and no agent has to ask to find out. Agents that predate the flags or the deadline read
 * the words they know only.
 *
 * The file is rewritten in place, never replaced: a mapping follows the inode, so a renamed
 * new file would leave every agent reading the old number forever. Zero means "do not use
 * cached decisions": written when the daemon stops (flags zero too), which then removes the
 * file; an agent whose mapping reads zero looks for a new file when a daemon next answers it. */

import { closeSync, constants, fchmodSync, fstatSync, ftruncateSync, lstatSync, openSync, unlinkSync, writeSync } from 'node:fs';
import type { EventName } from '../policy/schema.js';
import { QosError } from '../errors.js';

/** The generation, the flags word and the agents' deadline. */
export const GENERATION_BYTES = 24;

/** The agents' deadline when the daemon is given none: the agent's own default. */
export const DEFAULT_AGENT_TIMEOUT_MS = 50;
/** The longest deadline an agent takes (as for QOSD_TIMEOUT_MS). */
export const MAX_AGENT_TIMEOUT_MS = 60_000;

/** Flag: the running policy decides at the socket event itself (a rule naming `event: socket`,
 * or a script's Socket handler), so agents ask at socket(), not with the socket's first call
 * (docs/protocol.md). */
export const FLAG_ASK_AT_SOCKET = 1;

/** The flags a running policy publishes for agents. */
export function agentFlags(policy: { engine: { namesEvent(e: EventName): boolean }; script?: { handlers: ReadonlySet<string> } | null }): number {
  return policy.engine.namesEvent('socket') || policy.script?.handlers.has('Socket') ? FLAG_ASK_AT_SOCKET : 0;
}

export function generationPath(agentSocket: string): string {
  return `${agentSocket}.gen`;
}

export class GenerationFile {
  private fd: number;
  private readonly ino: number;
  private readonly dev: number;
  private last = 0;
  current = 0;

  /** agentTimeoutMs: the deadline published for agents (1 to MAX_AGENT_TIMEOUT_MS) */
  constructor(readonly path: string, private readonly agentTimeoutMs = DEFAULT_AGENT_TIMEOUT_MS) {
    try {
      this.fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
    } catch (e) {
      throw new QosError('QOS_ERR_ENVIRONMENT', `cannot open the generation file ${path}: ${(e as Error).message}`);
    }
    const st = fstatSync(this.fd);
    if (!st.isFile()) {
      closeSync(this.fd);
      throw new QosError('QOS_ERR_ENVIRONMENT', `${path} exists and is not a regular file`);
    }
    this.ino = st.ino;
    this.dev = st.dev;
    fchmodSync(this.fd, 0o644); // every user's agents read it
    // grown in place (an older daemon's file has 8 or 16 bytes): agents' mappings stay valid
    if (st.size < GENERATION_BYTES) ftruncateSync(this.fd, GENERATION_BYTES);
  }

  /** Publishes a new generation with the running policy's flags (agentFlags) and returns it. */
  next(flags = 0): number {
    // Microseconds since the epoch: unique across restarts of the daemon too (agents of the
    // old one may still hold entries), and increasing within one run.
    const gen = Math.max(this.last + 1, Date.now() * 1000);
    this.last = gen;
    this.write(gen, flags, this.agentTimeoutMs);
    return gen;
  }

  /** Tells agents to stop using cached decisions, closes the file and removes it (unless
   * the path names another file by now). */
  close(): void {
    if (this.fd < 0) return;
    this.write(0, 0, 0);
    closeSync(this.fd);
    this.fd = -1;
    try {
      const st = lstatSync(this.path);
      if (st.ino === this.ino && st.dev === this.dev) unlinkSync(this.path);
    } catch { /* gone already */ }
  }

  /** The three words in one write at offset 0. */
  private write(gen: number, flags: number, timeoutMs: number): void {
    const b = Buffer.alloc(GENERATION_BYTES);
    b.writeBigUInt64LE(BigInt(gen), 0);
    b.writeBigUInt64LE(BigInt(flags), 8);
    b.writeBigUInt64LE(BigInt(timeoutMs), 16);
    writeSync(this.fd, b, 0, GENERATION_BYTES, 0);
    this.current = gen;
  }
}
