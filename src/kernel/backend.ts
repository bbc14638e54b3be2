/* What the daemon's kernel rules (manager.ts) need of whatever enforces them: nftables
 * (nft-backend.ts) first. The rule set, its checks and edits (rules.ts, edits.ts) and the
 * layering (layers.ts) are the same for every backend; a backend plans (pure), then applies. */

import type { AtomCheck, KRule } from './atoms.js';

export interface Counter { packets: number; bytes: number }

/** A compiled rule as a backend plans it, with a key of its action (equal keys, equal actions). */
export interface PlanRule { rule: KRule; actionKey: string }

/** Where a backend enforces and how far it got: for status and the start-up log. */
export interface BackendStatus {
  /** what it installs ("inet qosd") */
  table: string;
  /** where it acts, as status fields (hook, priority, the mark's bits...) */
  where: Record<string, unknown>;
  /** the same, as words for the log */
  whereText: string;
  /** how many changes it has applied (nftables: the generation in the connection mark) */
  generation: number;
}

export interface EnforcementBackend<P> {
  /** "nftables": what `--kernel on` names when the backend cannot be used */
  readonly name: string;
  /** Why the backend cannot be used here, or null. */
  available(): Promise<string | null>;
  /** What the backend cannot express of a rule (rules.ts ruleProblems). */
  readonly validate: AtomCheck;
  /** The plan turning what the last apply left into `rules` (in order). Pure: changes
   * nothing; throws QOS_ERR_RULES_INVALID for a set the backend cannot hold. */
  plan(rules: readonly PlanRule[]): P;
  /** The plan's layers (per sequence): reports and status. */
  layers(plan: P): Record<string, number>;
  /** The exact documents apply would run, how many commands they hold, and the same as the
   * backend's own text for people (nftables: `nft -f` commands) (pure: --dry-run). */
  describe(plan: P): { documents: unknown[]; commands: number; text: string };
  /** Applies a plan made from the current state; `meanwhile` runs once, while the first
   * command works. Only a plan that was applied becomes the state the next one starts from. */
  apply(plan: P, meanwhile?: () => void): Promise<{ commands: number }>;
  /** Removes everything the backend installed; fine if there is nothing. */
  remove(): Promise<void>;
  /** Packets and bytes each rule decided, by rule id. */
  counters(): Promise<Map<string, Counter>>;
  status(): BackendStatus;
  /** The rule a connection's mark says took its flow (`qos explain`): the rule's id (null for
   * number 0, no rule, or a number no rule of the current state has), its number and
   * generation, and whether that generation is the current one. */
  connectionRule(mark: number): { id: string | null; number: number; generation: number; current: boolean };
}
