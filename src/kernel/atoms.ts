/* The normal form of kernel rules, shared by the rule format (rules.ts), the layering
 * (layers.ts) and every enforcement backend: a rule is a list of atoms, boxes of ranges. */

/** What a kernel rule does to a packet it decides. */
export interface KAction { dscp?: number; priority?: number; override: boolean }

/** An address range: lo/hi as fixed-width hex (8 digits for IPv4, 32 for IPv6) so that
 * ranges compare as strings; addr/len is the prefix nftables is given. */
export interface AddrRange { lo: string; hi: string; addr: string; len: number }
export type Range = readonly [number, number];

/** One box of a rule: a packet matches the rule if it falls in any of its atoms. */
export interface Atom { fam: 4 | 6; src: AddrRange; dst: AddrRange; proto: Range; sport: Range; dport: Range; uid?: Range; gid?: Range }

/** A rule in the kernel's order. */
export interface KRule {
  /** Stable within one rendering: "p3" is the policy's 3rd rule, "r7" the rule set's 7th. */
  id: string;
  name?: string;
  origin: 'policy' | 'rules';
  atoms: Atom[];
  action: KAction;
}

/** What an enforcement backend cannot express of a rule's atoms: one message per problem
 * (empty when it can). */
export type AtomCheck = (atoms: readonly Atom[]) => string[];
