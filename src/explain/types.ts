/* The JSON `qos explain --json` prints and POST /v1/explain answers (report.ts assembles it,
 * text.ts says it, the dashboard's Flows page shows it): types only, with nothing of Node's, so
 * the browser app shares them. */

/** A decision as the policy gives it (policy/engine.ts Decision, as it travels in JSON). */
export interface DecisionJson { tos?: number; dscp?: number; priority?: number; deny?: string; override?: boolean; tc?: unknown; reserve?: unknown }

/** One rule of the walk (policy/explain.ts RuleExplanation). */
export interface RuleLine {
  position: number;
  name: string;
  line?: number;
  result: 'matched' | 'failed' | 'not reached';
  /** for a rule that failed: its first condition that did not hold */
  failed?: string;
}

/** A flow as GET /v1/flows lists it: the agent's (pid and fd) or the eBPF programs' (a cookie). */
export interface DaemonFlow {
  path?: string; pid: number; fd?: number; cookie?: string; proto: string | null;
  remote: { address: string; port: number } | null; rule: string | null; class: string; decision: DecisionJson | null;
  appTos?: number | null; app_tos_kept?: boolean;
}

/** What the application asked for itself, and whether the kernel has it. */
export interface OwnTos {
  /** the TOS byte it set (IP_TOS / IPV6_TCLASS) as the agent reported it; null: the eBPF
   * programs saw it keep one of its own but do not report its value */
  asked: number | null;
  by: 'agent' | 'ebpf';
  /** whether the deciding rule says override */
  override: boolean;
  /** whether the kernel's TOS now is the application's */
  honoured: boolean;
}

/** The kernel rule a connection's mark names (kernel/manager.ts connectionRule). */
export interface KernelRuleFact { mark: string; number: number; generation: number; current: boolean; rule: { origin: 'policy' | 'rules'; name: string | null; position: number } | null }

/** Where a socket's packets are in traffic control: a flow, through a filter, or none and why. */
export type TcPlace =
  | {
    in: 'flow'; dev: string;
    flow: { id: number; name: string | null; class: string; mode: string; service: string; rate: number; conforming: { dscp: number; pcp: number }; nonconforming: { dscp: number; pcp: number }; owner: { kind: string; pid?: number; fd?: number; rule?: string; reservation?: string } };
    filter: { id: number; exact: boolean; match: string };
  }
  | { in: 'none'; why: string };

/** One socket of the process: the kernel's (kernel/sockets.ts KernelSocket: ss --tos), with
 * what qosd has to do with it. */
export interface SocketReport {
  proto: 'tcp' | 'udp'; state: string; fd: number; local: string; remote: string;
  /** the whole TOS byte the kernel has on the socket, and its priority (SO_PRIORITY) */
  tos: number; priority: number;
  /** what the daemon's flows say the agent or the eBPF programs decided for it */
  daemon?: DaemonFlow;
  own_tos: OwnTos | null;
  /** the kernel rule its connection's mark names, or why there is none to name */
  kernel_rule: KernelRuleFact | { why: string };
  /** the traffic-control flow its packets fall in, or none and why */
  tc: TcPlace;
  /** the per-application limit its tag in the kernel puts it under (docs/apps.md), or none and why */
  limit: LimitPlace;
}

/** A socket's per-application limit: the policy's limit (rates in bit/s, null: not limited that
 * way), or none and why. */
export type LimitPlace = { in: 'limit'; name: string; id: number; egress_bps: number | null; ingress_bps: number | null } | { in: 'none'; why: string };

export interface ExplainReport {
  policy: string;
  program: { pid: number; uid: number; gid: number; user: string; group: string; exe: string; cmdline: string; unit: string; cgroup: string };
  /** whether the process has the agent loaded (null: not known, or not a process) */
  agent: boolean | null;
  call: { event: string; proto: 'tcp' | 'udp'; remote: { address: string; port: number } | null; local: { address: string; port: number } | null };
  decided_by: string | null;
  line: number | null;
  decision: DecisionJson | null;
  path: { path: 'agent' | 'ebpf' | 'nftables' | 'none'; why: string };
  rules: RuleLine[];
  /** with a pid: its TCP and UDP sockets as the kernel has them now */
  sockets: SocketReport[] | null;
  sockets_error?: string;
  /** the socket the call is about: --fd, or the process's socket to --remote */
  socket: SocketReport | null;
}
