/* qosd errors: one base class with stable codes that cross the agent protocol, the HTTP API
 * and the CLI unchanged; the CLI maps them to exit codes in one place. */

export const ErrorCodes = {
  QOS_ERR_PROTOCOL: 'malformed or unknown agent message',
  QOS_ERR_MESSAGE_TOO_LONG: 'agent message longer than the limit',
  QOS_ERR_POLICY_INVALID: 'policy file is invalid',
  QOS_ERR_POLICY_IO: 'policy file cannot be read',
  QOS_ERR_POLICY_STALE: 'the running policy changed since the text the edit was based on',
  QOS_ERR_POLICY_READONLY: 'the daemon runs the built-in policy, which has no file to write (start it with --policy FILE)',
  QOS_ERR_USAGE: 'bad command-line usage',
  QOS_ERR_DAEMON_UNREACHABLE: 'the daemon does not answer',
  QOS_ERR_API: 'the daemon refused an admin request',
  QOS_ERR_FORBIDDEN: 'the admin API is for root, the daemon\'s own user and its admin group',
  QOS_ERR_NOT_FOUND: 'no such resource',
  QOS_ERR_UNAUTHENTICATED: 'no dashboard session (log in with the token `qos dashboard` prints), or a wrong token',
  QOS_ERR_TOO_LARGE: 'a request body over the bound',
  QOS_ERR_ENVIRONMENT: 'this machine lacks something qosd needs',
  QOS_ERR_BENCH: 'a benchmark step failed',
  QOS_ERR_CAPTURE: 'a packet capture is malformed or cannot be taken',
  QOS_ERR_RULES_INVALID: 'a kernel rule set or rule is invalid',
  QOS_ERR_RULES_STALE: 'the rule set changed since the revision the edit was based on',
  QOS_ERR_KERNEL: 'the kernel refused or could not apply the rules (nftables)',
  QOS_ERR_UNSAFE_PATH: 'a file, or a directory above it, that another user could change or point elsewhere',
  QOS_ERR_PRIVILEGE: 'the command changes the system and needs root',
  QOS_ERR_CONFLICT: 'a file qos install would write is already there and not its own',
  QOS_ERR_RSVP_DECODE: 'an RSVP message or object is malformed',
  QOS_ERR_RSVP_CHECKSUM: 'an RSVP message\'s checksum is wrong',
  QOS_ERR_RSVP_INTEGRITY: 'an RSVP message fails its INTEGRITY check (RFC 2747)',
  QOS_ERR_RSVP_INVALID: 'an RSVP value cannot be encoded',
  QOS_ERR_FLEET_UNREACHABLE: 'the fleet\'s etcd does not answer',
  QOS_ERR_FLEET_REFUSED: 'a node refused the document pushed, or did not report it applied in time (a staged roll-out stops there)',
  QOS_ERR_INTERNAL: 'internal error',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

/** A problem located in a file: line and column are 1-based. */
export interface Problem {
  file?: string;
  line?: number;
  col?: number;
  path?: string;
  message: string;
}

export class QosError extends Error {
  readonly code: ErrorCode;
  readonly problems: Problem[];
  constructor(code: ErrorCode, message: string, problems: Problem[] = [], options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'QosError';
    this.code = code;
    this.problems = problems;
  }
  toJSON(): { code: ErrorCode; message: string; problems?: Problem[] } {
    return this.problems.length
      ? { code: this.code, message: this.message, problems: this.problems }
      : { code: this.code, message: this.message };
  }
}

/** The HTTP status the admin API answers an error with: one table for every route (the CLI
 * maps the error's code, not the status, to its exit status). */
export function httpStatusFor(err: unknown): number {
  if (!(err instanceof QosError)) return 500;
  switch (err.code) {
    case 'QOS_ERR_USAGE':
    case 'QOS_ERR_PROTOCOL':
    case 'QOS_ERR_MESSAGE_TOO_LONG':
    case 'QOS_ERR_POLICY_INVALID':
    case 'QOS_ERR_RULES_INVALID':
    case 'QOS_ERR_RSVP_DECODE':
    case 'QOS_ERR_RSVP_CHECKSUM':
    case 'QOS_ERR_RSVP_INVALID':
    case 'QOS_ERR_CAPTURE': return 400; // an uploaded file that is not a capture, or a corrupt one
    case 'QOS_ERR_RSVP_INTEGRITY': return 401;
    case 'QOS_ERR_UNAUTHENTICATED': return 401;
    case 'QOS_ERR_TOO_LARGE': return 413; // not authenticated: the digest is wrong or its key unknown
    case 'QOS_ERR_FORBIDDEN':
    case 'QOS_ERR_PRIVILEGE': return 403;
    case 'QOS_ERR_NOT_FOUND': return 404;
    case 'QOS_ERR_RULES_STALE':
    case 'QOS_ERR_POLICY_STALE':
    case 'QOS_ERR_POLICY_READONLY':
    case 'QOS_ERR_CONFLICT': return 409;
    case 'QOS_ERR_FLEET_UNREACHABLE': return 503;
    case 'QOS_ERR_ENVIRONMENT': return 503; // this machine lacks something: not the request's fault
    default: return 500;
  }
}

/** Exit status for an error reaching the top of the CLI. */
export function exitCodeFor(err: unknown): number {
  if (!(err instanceof QosError)) return 70; // EX_SOFTWARE
  switch (err.code) {
    case 'QOS_ERR_USAGE': return 64; // EX_USAGE
    case 'QOS_ERR_POLICY_INVALID': return 65; // EX_DATAERR
    case 'QOS_ERR_RULES_INVALID': return 65;
    case 'QOS_ERR_CAPTURE': return 65; // a malformed capture is bad input data
    case 'QOS_ERR_RSVP_DECODE':
    case 'QOS_ERR_RSVP_CHECKSUM':
    case 'QOS_ERR_RSVP_INTEGRITY':
    case 'QOS_ERR_RSVP_INVALID': return 65; // EX_DATAERR: bad message bytes or values
    case 'QOS_ERR_RULES_STALE': return 75; // EX_TEMPFAIL: read again and retry
    case 'QOS_ERR_POLICY_STALE': return 75;
    case 'QOS_ERR_POLICY_READONLY': return 78; // EX_CONFIG: the daemon was started without a policy file
    case 'QOS_ERR_POLICY_IO': return 66; // EX_NOINPUT
    case 'QOS_ERR_DAEMON_UNREACHABLE': return 69; // EX_UNAVAILABLE
    case 'QOS_ERR_ENVIRONMENT': return 69;
    case 'QOS_ERR_FLEET_UNREACHABLE': return 69;
    case 'QOS_ERR_FLEET_REFUSED': return 65; // EX_DATAERR: the document failed where it was tried
    case 'QOS_ERR_NOT_FOUND': return 66;
    case 'QOS_ERR_FORBIDDEN': return 77; // EX_NOPERM
    case 'QOS_ERR_UNAUTHENTICATED': return 77;
    case 'QOS_ERR_TOO_LARGE': return 65;
    case 'QOS_ERR_UNSAFE_PATH': return 78; // EX_CONFIG: a file kept where it should not be
    case 'QOS_ERR_PRIVILEGE': return 77; // EX_NOPERM
    case 'QOS_ERR_CONFLICT': return 73; // EX_CANTCREAT
    default: return 70;
  }
}

/** One line per problem, "file:line:col: message", as compilers print them. */
export function formatProblems(problems: Problem[]): string {
  return problems
    .map((p) => {
      const where = [p.file, p.line, p.col].filter((x) => x !== undefined && x !== '').join(':');
      return (where ? where + ': ' : '') + (p.path ? `${p.path}: ` : '') + p.message;
    })
    .join('\n');
}
