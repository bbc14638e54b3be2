/* The etcd roles and users a qosd fleet runs with, so that a node can read the fleet's policy
 * and rules and write only its own status, and an admin can do anything under the prefix.
 * rolePlan is pure (the wanted roles, permissions and users); applyRoles brings a cluster to it
 * through npm etcd3's auth API, creating and granting only what is missing; etcdctlCommands
 * says the same as etcdctl argv lists. With --client-cert-auth etcd takes the client
 * certificate's CN as the user, so the users have no password and each certificate's CN is the
 * user's name (docs/fleet-etcd.md). */

import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
// types only: etcd3 (gRPC) is loaded when a command connects, not by every qos command
import type { Etcd3, IPermission } from 'etcd3';
import { QosError } from '../errors.js';
import { parseDurationUs } from '../units.js';
import { checkName, DEFAULT_PREFIX, kindPrefix, normPrefix, prefixEnd, statusKey } from './keys.js';

/** The admin's role and user. */
export const ADMIN_ROLE = 'qosd-admin';
/** etcd's own: the only user that may change roles and users once auth is enabled. */
const ROOT = 'root';

export type PermissionType = 'read' | 'write' | 'readwrite';
/** One permission of a role: an exact key, or every key starting with `key` (prefix). */
export interface PermissionSpec { type: PermissionType; key: string; prefix: boolean }
export interface RoleSpec { name: string; permissions: PermissionSpec[] }
/** A user, granted its roles; without a password it authenticates by its certificate's CN only. */
export interface UserSpec { name: string; roles: string[]; password?: string }
export interface RolePlan {
  prefix: string;
  /** in the order they are created; `root` has no permissions to grant (it has every one) */
  roles: RoleSpec[];
  /** `root` first: etcd refuses `auth enable` until a root user holds the root role */
  users: UserSpec[];
}

/** The role (and user) of node `name`. */
export function nodeRole(name: string): string {
  return `qosd-node-${name}`;
}

/** The roles and users a fleet of these nodes needs under prefix (pure). passwords, by user
 * name, for etcd without client-certificate auth; a user not in it gets none. */
export function rolePlan(prefix: string, nodes: string[], o: { passwords?: Record<string, string> } = {}): RolePlan {
  prefix = normPrefix(prefix);
  const seen = new Set<string>();
  for (const n of nodes) {
    checkName('--node', n);
    if (seen.has(n)) throw new QosError('QOS_ERR_USAGE', `--node ${n} is given twice`);
    seen.add(n);
  }
  const roles: RoleSpec[] = [
    { name: ROOT, permissions: [] },
    { name: ADMIN_ROLE, permissions: [{ type: 'readwrite', key: `${prefix}/`, prefix: true }] },
    ...nodes.map((n) => ({
      name: nodeRole(n),
      permissions: [
        { type: 'read' as const, key: kindPrefix(prefix, 'policy'), prefix: true },
        { type: 'read' as const, key: kindPrefix(prefix, 'rules'), prefix: true },
        { type: 'readwrite' as const, key: statusKey(prefix, n), prefix: false },
      ],
    })),
  ];
  const users = roles.map((r): UserSpec => {
    const password = o.passwords?.[r.name];
    return password === undefined ? { name: r.name, roles: [r.name] } : { name: r.name, roles: [r.name], password };
  });
  const unknown = Object.keys(o.passwords ?? {}).filter((u) => !users.some((x) => x.name === u));
  if (unknown.length) throw new QosError('QOS_ERR_USAGE', `passwords given for users the plan does not have: ${unknown.join(', ')}`);
  return { prefix, roles, users };
}

/** The argv lists an admin could run instead of applyRoles, in order (each needs the
 * connection's own flags: --endpoints, and --cacert, --cert, --key with TLS). A user with a
 * password is added with --interactive=false, which reads the password on stdin. */
export function etcdctlCommands(plan: RolePlan): string[][] {
  const cmds: string[][] = [];
  for (const r of plan.roles) {
    cmds.push(['etcdctl', 'role', 'add', r.name]);
    for (const p of r.permissions) cmds.push(['etcdctl', 'role', 'grant-permission', r.name, p.type, p.key, ...(p.prefix ? ['--prefix=true'] : [])]);
  }
  for (const u of plan.users) {
    cmds.push(['etcdctl', 'user', 'add', u.name, u.password === undefined ? '--no-password' : '--interactive=false']);
    for (const r of u.roles) cmds.push(['etcdctl', 'user', 'grant-role', u.name, r]);
  }
  cmds.push(['etcdctl', 'auth', 'enable']);
  return cmds;
}

/** What applyRoles changed. */
export interface ApplyReport {
  rolesCreated: string[];
  usersCreated: string[];
  /** "role: type key[ (prefix)]" */
  permissionsGranted: string[];
  permissionsRevoked: string[];
  /** "user: role" */
  rolesGranted: string[];
}

/** etcd3 sends and reads a permission's type as the enum's name in its auth.proto */
const PERM_TYPE: Record<PermissionType, IPermission['permType']> = { read: 'Read', write: 'Write', readwrite: 'Readwrite' };


function wire(p: PermissionSpec): IPermission {
  const key = Buffer.from(p.key);
  return { permType: PERM_TYPE[p.type], key, range_end: p.prefix ? prefixEnd(key) : Buffer.alloc(0) };
}

function describe(role: string, p: PermissionSpec): string {
  return `${role}: ${p.type} ${p.key}${p.prefix ? ' (prefix)' : ''}`;
}

/** How long one call may take by default: etcd answers a member that has no quorum, or has not
 * joined its cluster yet, with nothing at all, and a call without a deadline waits for ever. */
export const CALL_TIMEOUT_MS = 30_000;

/** One call with its deadline; what etcd refused becomes a QosError saying what qosd was
 * doing, and a refusal says who may. */
async function step<T>(doing: string, timeoutMs: number, f: (o: { deadline: number }) => Promise<T>): Promise<T> {
  try {
    return await f({ deadline: Date.now() + timeoutMs });
  } catch (e) {
    if (/permission denied/i.test((e as Error).message ?? '')) {
      throw new QosError('QOS_ERR_FORBIDDEN', `etcd refused ${doing}: ${(e as Error).message}: once auth is enabled only etcd's root user may change roles and users (connect with the root user's certificate, CN=root)`, [], { cause: e });
    }
    const { fleetError } = await import('./connect.js');
    throw fleetError(e, doing);
  }
}

/** Brings the cluster's roles and users to the plan, then enables auth: creates the roles and
 * users that are missing, grants each role exactly its permissions (revoking others), grants
 * each user its roles. Run it once as any user before auth is enabled (the bootstrap) and as
 * root after; running it again changes nothing. */
export async function applyRoles(client: Etcd3, plan: RolePlan, o: { callTimeoutMs?: number } = {}): Promise<ApplyReport> {
  const t = o.callTimeoutMs ?? CALL_TIMEOUT_MS;
  const report: ApplyReport = { rolesCreated: [], usersCreated: [], permissionsGranted: [], permissionsRevoked: [], rolesGranted: [] };
  const roles = new Set((await step('listing roles', t, (d) => client.auth.roleList(d))).roles);
  const users = new Set((await step('listing users', t, (d) => client.auth.userList(d))).users);
  for (const r of plan.roles) {
    if (!roles.has(r.name)) {
      await step(`adding role ${r.name}`, t, (d) => client.auth.roleAdd({ name: r.name }, d));
      report.rolesCreated.push(r.name);
    }
    if (r.name === ROOT) continue; // every permission is root's: none is granted or revoked
    const have = (await step(`reading role ${r.name}`, t, (d) => client.auth.roleGet({ role: r.name }, d))).perm;
    const want = r.permissions.map((p) => ({ spec: p, wire: wire(p) }));
    const matches = (h: IPermission, w: IPermission) => h.permType === w.permType && Buffer.from(h.key).equals(w.key) && Buffer.from(h.range_end).equals(w.range_end);
    for (const h of have) {
      if (want.some((w) => matches(h, w.wire))) continue;
      await step(`revoking a permission of ${r.name}`, t, (d) => client.auth.roleRevokePermission({ role: r.name, key: Buffer.from(h.key), range_end: Buffer.from(h.range_end) }, d));
      report.permissionsRevoked.push(`${r.name}: ${String(h.permType).toLowerCase()} ${Buffer.from(h.key).toString()}${h.range_end.length ? ` .. ${Buffer.from(h.range_end).toString()}` : ''}`);
    }
    for (const w of want) {
      if (have.some((h) => matches(h, w.wire))) continue;
      await step(`granting ${describe(r.name, w.spec)}`, t, (d) => client.auth.roleGrantPermission({ name: r.name, perm: w.wire }, d));
      report.permissionsGranted.push(describe(r.name, w.spec));
    }
  }
  for (const u of plan.users) {
    if (!users.has(u.name)) {
      await step(`adding user ${u.name}`, t, (d) => client.auth.userAdd(u.password === undefined
        ? { name: u.name, password: '', options: { no_password: true } }
        : { name: u.name, password: u.password }, d));
      report.usersCreated.push(u.name);
    }
    const has = new Set((await step(`reading user ${u.name}`, t, (d) => client.auth.userGet({ name: u.name }, d))).roles);
    for (const r of u.roles) {
      if (has.has(r)) continue;
      await step(`granting role ${r} to ${u.name}`, t, (d) => client.auth.userGrantRole({ user: u.name, role: r }, d));
      report.rolesGranted.push(`${u.name}: ${r}`);
    }
  }
  // etcd 3.4 answers an enable of enabled auth with success: the step is the same every time
  await step('enabling auth', t, (d) => client.auth.authEnable(d));
  return report;
}

/** The plan as text: roles and their permissions, users, then the etcdctl commands. */
export function formatPlan(plan: RolePlan): string {
  const lines = [`roles under ${plan.prefix}:`];
  for (const r of plan.roles) lines.push(`  ${r.name}: ${r.permissions.length ? r.permissions.map((p) => `${p.type} ${p.key}${p.prefix ? ' (prefix)' : ''}`).join(', ') : 'every permission (etcd\'s root role)'}`);
  lines.push('users (no password: etcd takes the client certificate\'s CN as the user):');
  for (const u of plan.users) lines.push(`  ${u.name}: ${u.roles.join(', ')}${u.password !== undefined ? ' (password)' : ''}`);
  lines.push('the same with etcdctl (add --endpoints, and --cacert, --cert, --key with TLS; a user with a password reads it on stdin):');
  for (const c of etcdctlCommands(plan)) lines.push(`  ${c.join(' ')}`);
  return lines.join('\n');
}

function passwordsFrom(file: string): Record<string, string> {
  let v: unknown;
  try { v = JSON.parse(readFileSync(file, 'utf8')); } catch (e) {
    throw new QosError('QOS_ERR_USAGE', `--password-file ${file}: cannot read it as JSON (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((p) => typeof p !== 'string' || !p)) {
    throw new QosError('QOS_ERR_USAGE', `--password-file ${file}: a JSON object of user name to password, e.g. {"root": "...", "qosd-admin": "..."}`);
  }
  return v as Record<string, string>;
}

function print(s: string): void {
  process.stdout.write(s + '\n');
}

interface RolesOptions {
  node: string[];
  prefix?: string;
  fleetPrefix: string;
  fleet?: string;
  fleetCa?: string;
  fleetCert?: string;
  fleetKey?: string;
  passwordFile?: string;
  apply?: boolean;
  timeout?: string;
  json?: boolean;
}

/** --timeout: a time such as 30s or 500ms, bare seconds. */
function timeoutMs(v: string): number {
  let us = NaN;
  try { us = parseDurationUs(v, 's'); } catch { /* said below, naming the option */ }
  if (!(us > 0)) throw new QosError('QOS_ERR_USAGE', `--timeout takes a time such as 30s or 500ms, not "${v}"`);
  return us / 1000;
}

/** Registers `qos fleet roles` on the `fleet` command (the connection options are those of
 * every qos fleet command). */
export function registerRolesCommand(fleet: Command): void {
  fleet
    .command('roles')
    .description('the etcd roles and users of a fleet: qosd-admin (readwrite under the prefix), one qosd-node-NAME per node (read PREFIX/policy/ and PREFIX/rules/, readwrite PREFIX/status/NAME), root; printed with the etcdctl commands that make them, or applied (--apply, then auth enabled) (docs/fleet-etcd.md)')
    .option('--node <name>', 'a node of the fleet (again for more)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--fleet <url>', 'the etcd endpoints, etcd://HOST:PORT[,HOST:PORT...] (env QOSD_FLEET), for --apply')
    .option('--fleet-prefix <prefix>', 'the key prefix of the fleet (env QOSD_FLEET_PREFIX)', process.env.QOSD_FLEET_PREFIX ?? DEFAULT_PREFIX)
    .option('--prefix <prefix>', 'the same as --fleet-prefix')
    .option('--fleet-ca <file>', 'TLS: the CA of the etcd servers\' certificates (https)')
    .option('--fleet-cert <file>', 'TLS: this client\'s certificate (with --fleet-key); its CN is the etcd user: any before auth is enabled, root after')
    .option('--fleet-key <file>', 'TLS: this client\'s private key')
    .option('--password-file <file>', 'a JSON object of user name to password, for etcd without client-certificate auth (a user not in it gets no password)')
    .option('--apply', 'make what is missing in the cluster (roles, permissions, users, grants; permissions not in the plan revoked), then enable auth')
    .option('--timeout <time>', `--apply: how long one request to etcd may take (a member without quorum never answers) (default ${CALL_TIMEOUT_MS / 1000}s)`)
    .option('--json', 'print one JSON object: prefix, roles, users (password: whether one is set), etcdctl (argv lists); with --apply, applied: what changed')
    .action(async (o: RolesOptions, cmd: Command) => {
      if (o.prefix !== undefined && cmd.getOptionValueSource('fleetPrefix') === 'cli' && normPrefix(o.prefix) !== normPrefix(o.fleetPrefix)) {
        throw new QosError('QOS_ERR_USAGE', `--prefix ${o.prefix} and --fleet-prefix ${o.fleetPrefix}: they are the same option, give one`);
      }
      const callTimeoutMs = o.timeout === undefined ? CALL_TIMEOUT_MS : timeoutMs(o.timeout);
      const plan = rolePlan(o.prefix ?? o.fleetPrefix, o.node, { passwords: o.passwordFile === undefined ? undefined : passwordsFrom(o.passwordFile) });
      let applied: ApplyReport | undefined;
      if (o.apply) {
        const url = o.fleet ?? process.env.QOSD_FLEET;
        if (!url) throw new QosError('QOS_ERR_USAGE', '--apply: which fleet? give --fleet etcd://HOST:PORT[,HOST:PORT...] or set QOSD_FLEET');
        const { fleetClient } = await import('./connect.js');
        const client = fleetClient({ fleet: url, ca: o.fleetCa, cert: o.fleetCert, key: o.fleetKey });
        try { applied = await applyRoles(client, plan, { callTimeoutMs }); } finally { client.close(); }
      }
      if (o.json) {
        const users = plan.users.map((u) => ({ name: u.name, roles: u.roles, password: u.password !== undefined }));
        print(JSON.stringify({ prefix: plan.prefix, roles: plan.roles, users, etcdctl: etcdctlCommands(plan), ...(applied ? { applied } : {}) }, null, 2));
      } else if (applied) {
        const parts = Object.entries(applied).map(([k, v]: [string, string[]]) => `${k}: ${v.length ? v.join('; ') : 'none'}`);
        print([`applied under ${plan.prefix}, auth enabled`, ...parts.map((p) => `  ${p}`)].join('\n'));
      } else {
        print(formatPlan(plan));
      }
    });
}
