/* Unprivileged local users for the tests of what a hostile user can do: created on first use
 * (a system account without home or shell), kept for later runs, and their processes started
 * with setpriv, so the daemon learns who they are from the kernel as it would in real life. */

import { runSync } from '../exec.js';

export interface TestUser { name: string; uid: number; gid: number }

function lookup(name: string): TestUser | null {
  const r = runSync(['getent', 'passwd', name], { ok: 'any' });
  if (r.code !== 0) return null;
  const f = r.stdout.trim().split(':');
  return { name, uid: Number(f[2]), gid: Number(f[3]) };
}

/** The test user `qosd-t-<tag>` (tag: up to 20 letters, digits or dashes), created if absent.
 * Needs root and useradd (Debian's passwd package). */
export function testUser(tag: string): TestUser {
  if (!/^[a-z0-9-]{1,20}$/.test(tag)) throw new Error(`test user tag ${JSON.stringify(tag)}: 1-20 of a-z 0-9 -`);
  const name = `qosd-t-${tag}`;
  const known = lookup(name);
  if (known) return known;
  const r = runSync(['useradd', '--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', name], { ok: 'any', pkg: 'passwd' });
  // another test process may have created it meanwhile (exit 9: name in use)
  const made = lookup(name);
  if (!made) throw new Error(`cannot create test user ${name} (useradd exit ${r.code}: ${r.stderr.trim()}); the tests need root and the passwd package`);
  return made;
}

/** argv that runs argv as u: real and effective uid and gid, no supplementary groups. */
export function asUser(u: TestUser, argv: string[]): string[] {
  return ['setpriv', `--reuid=${u.uid}`, `--regid=${u.gid}`, '--clear-groups', '--', ...argv];
}
