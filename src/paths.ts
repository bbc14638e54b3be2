/* Where the installed package keeps its built artefacts, its version, and the default paths
 * of the daemon's sockets, policy and rule store. */

import { lstatSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { QosError } from './errors.js';

const root = resolve(fileURLToPath(import.meta.url), '../..');

/** The package's root directory (holds agent/, native/, dist/). */
export const PACKAGE_ROOT = root;
/** The LD_PRELOAD library built by `npm install`. */
export const AGENT_LIBRARY = resolve(root, 'agent/build/libqosagent.so');
/** The BPF program that writes 802.1p priority tags (bpf/dot1p.bpf.c; docs/traffic-control.md). */
export const DOT1P_OBJECT = resolve(root, 'bpf/build/dot1p.bpf.o');
/** The per-executable marking programs (bpf/exe-mark.bpf.c, docs/ebpf.md) and their loader (native/qosbpf.c). */
export const EXE_MARK_OBJECT = resolve(root, 'bpf/build/exe-mark.bpf.o');
export const NATIVE_BPF = resolve(root, 'native/build/qosbpf.node');
/** RSVP's packet I/O helper (native/rsvpio.c), which src/rsvp/transport spawns. */
export const RSVPIO_PROGRAM = resolve(root, 'native/build/rsvpio');
/** Sender TCP cheating's packet helper (native/tcpcheat.c; docs/tcp-cheating.md). */
export const TCPCHEAT_PROGRAM = resolve(root, 'native/build/tcpcheat');
/** The package's version (package.json): `qos --version`, the man page, the Debian package. */
export const PACKAGE_VERSION = (JSON.parse(readFileSync(resolve(root, 'package.json'), 'utf8')) as { version: string }).version;

export function agentSocket(opt?: string): string {
  return opt ?? process.env.QOSD_SOCKET ?? '/run/qosd/agent.sock';
}

/** Where `qos daemon` keeps the kernel rule set, and the nftables table it owns. */
export const DEFAULT_RULES_FILE = '/var/lib/qosd/rules.json';
export const DEFAULT_NFT_TABLE = 'qosd';

export function adminSocket(opt?: string): string {
  return opt ?? process.env.QOSD_ADMIN ?? '/run/qosd/admin.sock';
}

/** The policy `qos daemon` runs when given no --policy, if the file is there. */
export const DEFAULT_POLICY_FILE = '/etc/qosd/policy.yaml';

/** How the daemon's policy was chosen: given with --policy, the default file
 * (/etc/qosd/policy.yaml), or the built-in policy because that file is absent. */
export type PolicyOrigin = 'option' | 'default' | 'built-in' | 'fleet';

/** Which policy the daemon runs and why: --policy's file; else the default file if anything is
 * there (a link or a directory there is refused when read, not passed over); else the
 * built-in policy (file null). */
export function choosePolicy(opt: string | undefined, defaultFile = DEFAULT_POLICY_FILE): { file: string | null; origin: PolicyOrigin } {
  if (opt !== undefined) return { file: opt, origin: 'option' };
  try {
    lstatSync(defaultFile);
    return { file: defaultFile, origin: 'default' };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { file: null, origin: 'built-in' };
    throw new QosError('QOS_ERR_POLICY_IO', `cannot tell whether the default policy ${defaultFile} is there: ${(e as Error).message}`, [], { cause: e });
  }
}
