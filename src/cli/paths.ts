/* Where the installed package keeps its built artefacts, and the default socket paths. */

import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

const root = resolve(fileURLToPath(import.meta.url), '../../..');

/** The package's root directory (holds agent/, native/, dist/). */
export const PACKAGE_ROOT = root;
/** The LD_PRELOAD library built by `npm install`. */
export const AGENT_LIBRARY = resolve(root, 'agent/build/libqosagent.so');

export function agentSocket(opt?: string): string {
  return opt ?? process.env.QOSD_SOCKET ?? '/run/qosd/agent.sock';
}

/** Where `qos daemon` keeps the kernel rule set, and the nftables table it owns. */
export const DEFAULT_RULES_FILE = '/var/lib/qosd/rules.json';
export const DEFAULT_NFT_TABLE = 'qosd';

export function adminSocket(opt?: string): string {
  return opt ?? process.env.QOSD_ADMIN ?? '/run/qosd/admin.sock';
}
