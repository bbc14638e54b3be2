/* The dashboard's login token: 32 random bytes (hex) the daemon makes at each start and keeps in
 * a root-only file beside the admin socket (`dashboard.token`, mode 0600), for `qos dashboard`
 * to read and put in the URL it prints. Whoever can read the file may use the dashboard, which
 * can do what the admin API lets root do: so the file is written atomically, never through a
 * symbolic link (atomic-file.ts), and the token is never logged. */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../atomic-file.js';
import { QosError } from '../errors.js';

/** The token file of the daemon whose admin socket is `admin`. */
export function tokenFileFor(admin: string): string {
  return join(dirname(admin), 'dashboard.token');
}

/** A new token: 32 random bytes as 64 hex digits. */
export function newToken(): string {
  return randomBytes(32).toString('hex');
}

/** Writes the token, mode 0600 from its first byte (a link at `path` is refused). */
export function writeToken(path: string, token: string): void {
  writeFileAtomic(path, `${token}\n`, { mode: 0o600 });
}

/** Removes the token file (at stop: a stopped daemon's token opens nothing, and should not lie around). */
export function removeToken(path: string): void {
  rmSync(path, { force: true });
}

/** The token in the file, for `qos dashboard`; errors say which file and why it cannot be read. */
export function readToken(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      throw new QosError('QOS_ERR_PRIVILEGE', `cannot read the dashboard's login token in ${path}: it is root's only (mode 0600); run qos dashboard as root (sudo qos dashboard)`);
    }
    if (code === 'ENOENT') throw new QosError('QOS_ERR_NOT_FOUND', `the dashboard's login token ${path} is not there: the daemon writes it when it starts with --http (is this the daemon's admin socket's directory?)`);
    throw new QosError('QOS_ERR_ENVIRONMENT', `cannot read the dashboard's login token in ${path}: ${(e as Error).message}`);
  }
  const token = text.trim();
  if (!/^[0-9a-f]{64}$/.test(token)) throw new QosError('QOS_ERR_ENVIRONMENT', `${path} does not hold a dashboard login token (64 hex digits)`);
  return token;
}

/** Whether `given` is the token, in time that does not depend on where they differ (both are
 * hashed first, so their lengths do not show either). */
export function sameToken(given: string, token: string): boolean {
  const h = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(given), h(token)) && given.length === token.length;
}
