/* The rule-set part of the admin API (JSON over HTTP, docs/kernel-rules.md):
 *   GET    /v1/rules                 the set and the policy's kernel rules, with counters
 *   GET    /v1/rules/status          the backend's state
 *   GET    /v1/rules/values          allowed values and defaults
 *   GET    /v1/rules/export          the portable file
 *   POST   /v1/rules                 { rule, position? }   add (at the end) or insert
 *   PUT    /v1/rules/REF             { rule }              replace (REF: position or name)
 *   DELETE /v1/rules/REF
 *   POST   /v1/rules/move            { from: REF, to: position }
 *   POST   /v1/rules/enable | disable            the whole set
 *   POST   /v1/rules/REF/enable | disable        one rule (kept in its place either way)
 *   POST   /v1/rules/import          { text }              replace the whole set
 *   POST   /v1/rules/validate        { text } | { rule }
 * Every edit takes optional `revision` (refused if the set moved on) and `dry_run` (answers
 * what it would apply, changing nothing: the documents, `dry_run`, and their nft text, `nft`);
 * each request becomes one Edit (edits.ts), data the manager applies. */

import { httpStatusFor, QosError } from '../errors.js';
import { DSCP_NAMES } from '../policy/dscp.js';
import { checkRule, parseRuleSet, ruleSetText, type KernelRules } from './manager.js';
import { MAX_ATOMS_PER_RULE, PROTOCOLS, systemNames } from './rules.js';

export interface ApiAnswer { status: number; body: unknown }

export function apiError(e: unknown): ApiAnswer {
  const err = e instanceof QosError ? e : new QosError('QOS_ERR_INTERNAL', String(e));
  return { status: httpStatusFor(err), body: { error: err.toJSON() } };
}

export const VALUES = {
  match: {
    family: ['inet', 'inet6'],
    proto: Object.keys(PROTOCOLS).concat(['a number 0-255']),
    remote: 'an address or CIDR prefix (192.0.2.0/24, 2001:db8::/32), or a list',
    local: 'an address or CIDR prefix, or a list',
    remote_port: 'a port 0-65535 or a range "a-b", or a list; without proto, tcp and udp',
    local_port: 'a port 0-65535 or a range "a-b", or a list',
    uid: 'a numeric uid, or a list', gid: 'a numeric gid, or a list',
    user: 'a user name from /etc/passwd, or a list', group: 'a group name from /etc/group, or a list',
  },
  action: {
    dscp: Object.keys(DSCP_NAMES).concat(['a number 0-63']),
    tos: 'a number 0-255 (its DSCP bits are used; ECN is left alone)',
    priority: 'a number 0-7 (the socket priority, skb->priority)',
    override: 'true: also re-mark packets that already carry a DSCP',
  },
  enabled: 'true or false: a disabled rule keeps its place and name in the set but is not in the kernel',
  defaults: { match: 'absent fields match everything (a rule without match is the default rule)', override: false, enabled: true, position: 'the end' },
  limits: { atoms_per_rule: MAX_ATOMS_PER_RULE, rules: 65535 },
};

function editArgs(body: Record<string, unknown>): { revision: number | undefined; dryRun: boolean } {
  const revision = body.revision;
  if (revision !== undefined && !(Number.isInteger(revision) && (revision as number) >= 0)) throw new QosError('QOS_ERR_USAGE', `revision must be a whole number, not ${JSON.stringify(revision)}`);
  return { revision: revision as number | undefined, dryRun: body.dry_run === true };
}

/** Answers one /v1/rules request. */
export async function rulesApi(k: KernelRules, method: string, path: string, body: Record<string, unknown>): Promise<ApiAnswer> {
  try {
    const rest = path.replace(/^\/v1\/rules\/?/, '');
    const { revision, dryRun } = method === 'GET' ? { revision: undefined, dryRun: false } : editArgs(body);
    const ok = (body: unknown) => ({ status: 200, body });
    const check = (raw: unknown) => checkRule(raw, systemNames(), k.validate);
    switch (`${method} ${rest.includes('/') ? '?' : rest}`) {
      case 'GET ': return ok(await k.list());
      case 'GET status': return ok(k.status());
      case 'GET values': return ok(VALUES);
      case 'GET export': return ok({ text: ruleSetText(k.ruleSet), revision: k.storedRevision });
      case 'POST ': return ok(await k.edit(revision, dryRun, { op: 'add', rule: check(body.rule), position: body.position }));
      case 'POST move': return ok(await k.edit(revision, dryRun, { op: 'move', from: body.from, to: body.to }));
      case 'POST enable': return ok(await k.edit(revision, dryRun, { op: 'enable' }));
      case 'POST disable': return ok(await k.edit(revision, dryRun, { op: 'disable' }));
      case 'POST import': {
        if (typeof body.text !== 'string') throw new QosError('QOS_ERR_USAGE', 'import needs { text: "<the rule-set file>" }');
        const doc = parseRuleSet(body.text, typeof body.file === 'string' ? body.file : '<import>', systemNames(), k.validate);
        return ok(await k.edit(revision, dryRun, { op: 'import', doc }));
      }
      case 'POST validate': {
        if (typeof body.text === 'string') { const d = parseRuleSet(body.text, typeof body.file === 'string' ? body.file : '<text>', systemNames(), k.validate); return ok({ ok: true, rules: d.rules.length }); }
        check(body.rule);
        return ok({ ok: true, rules: 1 });
      }
      default: {
        const one = /^([^/]+)\/(enable|disable)$/.exec(rest);
        if (one && method === 'POST') return ok(await k.edit(revision, dryRun, { op: one[2] as 'enable' | 'disable', ref: decodeURIComponent(one[1]!) }));
        if (rest && !rest.includes('/') && (method === 'PUT' || method === 'DELETE')) {
          const ref = decodeURIComponent(rest);
          return ok(await k.edit(revision, dryRun, method === 'PUT' ? { op: 'replace', ref, rule: check(body.rule) } : { op: 'delete', ref }));
        }
        throw new QosError('QOS_ERR_NOT_FOUND', `no route ${method} ${path}`);
      }
    }
  } catch (e) {
    return apiError(e);
  }
}
