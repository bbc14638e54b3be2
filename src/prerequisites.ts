/* What the tests need of the machine. A missing piece fails the test file at once, naming the
 * Debian package that provides it (scripts/debian-packages lists them all; scripts/setup
 * installs them): a test that cannot run is never reported as skipped, so a run that passed
 * checked everything. */

import { installed } from './exec.js';
import { findChromium } from './report/chromium.js';

/** The Debian package of each program the tests run. */
const PACKAGE_OF: Record<string, string> = {
  ip: 'iproute2', tcpdump: 'tcpdump', tshark: 'tshark', editcap: 'wireshark-common (it comes with tshark)',
  iperf3: 'iperf3', socat: 'socat', curl: 'curl', python3: 'python3', tclsh: 'tcl8.6', nft: 'nftables',
  setcap: 'libcap2-bin', pgrep: 'procps', gcc: 'gcc', chromium: 'chromium',
  'dpkg-deb': 'dpkg', 'dpkg-shlibdeps': 'dpkg-dev', 'apt-get': 'apt', 'systemd-analyze': 'systemd', 'systemd-tmpfiles': 'systemd',
  strace: 'strace', setpriv: 'util-linux', etcd: 'etcd-server', hey: 'hey', mount: 'mount', etcdctl: 'etcd-client', openssl: 'openssl', nsenter: 'util-linux', ss: 'iproute2', sysctl: 'procps', prlimit: 'util-linux', groff: 'groff-base',
};

/** The Debian package that provides a program (its own name when the list does not say). */
export function packageOf(tool: string): string {
  return PACKAGE_OF[tool] ?? tool;
}

export class MissingPrerequisite extends Error {
  override name = 'MissingPrerequisite';
}

/** Throws, naming the package, unless every tool is on PATH. */
export function requireTools(...tools: string[]): void {
  for (const t of tools) {
    if (!installed(t)) throw new MissingPrerequisite(`these tests need \`${t}\`: install the Debian package ${packageOf(t)} (bash scripts/setup installs all the tests need)`);
  }
}

/** Throws unless the tests run as root (they create namespaces, nftables tables, other users' files). */
export function requireRoot(why: string): void {
  if (process.getuid?.() !== 0) throw new MissingPrerequisite(`these tests need root: ${why}; run npm test as root`);
}

/** Throws unless a Chromium the reports can be rendered with is installed. */
export function requireChromium(): string {
  const b = findChromium();
  if (!b) throw new MissingPrerequisite('these tests need a Chromium to render reports: install the Debian package chromium (bash scripts/setup installs all the tests need)');
  return b;
}
