/* The policy generation, published for agents in a small file beside the agent socket
 * (`<socket>.gen`): eight bytes, little-endian, that agents map read-only. An agent reuses a
 * cached decision only while the number it was given with it (`CACHE gen`) is still the one
 * in the file, so a reload or a stop invalidates every agent's cache with one write, and no
 * agent has to ask to find out.
 *
 * The file is rewritten in place, never replaced: a mapping follows the inode, so a renamed
 * new file would leave every agent reading the old number forever. Zero means "do not use
 * cached decisions" (written when the daemon stops). */

import { closeSync, constants, fchmodSync, fstatSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { QosError } from '../errors.js';

export const GENERATION_BYTES = 8;

export function generationPath(agentSocket: string): string {
  return `${agentSocket}.gen`;
}

export class GenerationFile {
  private fd: number;
  private last = 0;
  current = 0;

  constructor(readonly path: string) {
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
    fchmodSync(this.fd, 0o644); // every user's agents read it
    if (st.size < GENERATION_BYTES) ftruncateSync(this.fd, GENERATION_BYTES);
  }

  /** Publishes a new generation and returns it. */
  next(): number {
    // Microseconds since the epoch: unique across restarts of the daemon too (agents of the
    // old one may still hold entries), and increasing within one run.
    const gen = Math.max(this.last + 1, Date.now() * 1000);
    this.last = gen;
    this.write(gen);
    return gen;
  }

  /** Tells agents to stop using cached decisions, and closes the file. */
  close(): void {
    if (this.fd < 0) return;
    this.write(0);
    closeSync(this.fd);
    this.fd = -1;
  }

  private write(gen: number): void {
    const b = Buffer.alloc(GENERATION_BYTES);
    b.writeBigUInt64LE(BigInt(gen));
    writeSync(this.fd, b, 0, GENERATION_BYTES, 0);
    this.current = gen;
  }
}
