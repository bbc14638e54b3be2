/* The systemd unit and the tmpfiles entry that run `qos daemon` as a system service: one text
 * for the Debian package and for `qos install`, which differ only in the command that starts
 * the daemon and where its documentation is. docs/install.md says why each setting is there;
 * what the daemon needs was read from the code and checked by running it so (deb.test.ts). */

export const UNIT_NAME = 'qosd.service';
export const TMPFILES_NAME = 'qosd.conf';

/** The capabilities the daemon keeps (CapabilityBoundingSet), each with what needs it. */
export const CAPABILITIES: readonly (readonly [cap: string, why: string])[] = [
  ['CAP_NET_ADMIN', 'nft: the daemon\'s nftables table (kernel rules)'],
  ['CAP_SYS_PTRACE', "readlink /proc/PID/exe of another user's or a setuid process (the exe a policy matches); pidfd_getfd of a socket the agent decided under a limit (docs/apps.md)"],
  ['CAP_KILL', "pidfd_send_signal(pidfd, 0) on another user's process: whether the process that connected still lives"],
  ['CAP_CHOWN', '--admin-group: the admin socket is handed to that group'],
  ['CAP_BPF', '--ebpf: loading the per-executable marking programs and their maps (docs/ebpf.md)'],
  ['CAP_PERFMON', '--ebpf: the programs read the calling task (its executable file) through BTF'],
];

/** The address families the daemon opens: Unix (agents, admin API) and netlink (nft). */
export const ADDRESS_FAMILIES = ['AF_UNIX', 'AF_NETLINK'] as const;

/** The descriptor limit the unit gives (daemon.ts asks for NOFILE_WANTED, 65,536). */
export const LIMIT_NOFILE = 65_536;

/** Directories the unit hides from the daemon (ProtectHome=yes, PrivateTmp=yes): qosd itself
 * must not be installed under them. */
export const HIDDEN_FROM_SERVICE = ['/home', '/root', '/run/user', '/tmp', '/var/tmp'] as const;

/** One argument of ExecStart as systemd reads it back: % and $ doubled (specifiers and
 * variables), quoted with C escapes if it has white space, quotes, backslashes or ;. */
export function systemdQuote(arg: string): string {
  const a = arg.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /[\s"'\\;]/.test(a) || a === '' ? `"${a.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"` : a;
}

/** The argv of an Exec line written by systemdQuote (the inverse; for tests and checks). */
export function execArgv(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const m of line.matchAll(re)) {
    const raw = m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!;
    out.push(raw.replace(/%%/g, '%').replace(/\$\$/g, '$'));
  }
  return out;
}

/** Settings of a unit file: section → key → values (a key may be given more than once). */
export function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let cur: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      cur = sections.get(sec[1]!) ?? new Map();
      sections.set(sec[1]!, cur);
      continue;
    }
    const eq = line.indexOf('=');
    if (!cur || eq < 0) continue;
    const key = line.slice(0, eq).trim();
    cur.set(key, [...(cur.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}

export interface UnitOptions {
  /** the daemon's command: an absolute program and its arguments */
  execStart: string[];
  /** Documentation= URIs */
  documentation: string[];
}

/** The text of qosd.service. */
export function unitText(o: UnitOptions): string {
  if (!o.execStart[0]?.startsWith('/')) throw new Error(`ExecStart needs an absolute program, not ${o.execStart[0]}`);
  const caps = CAPABILITIES.map(([c, why]) => `#   ${c}: ${why}`);
  return `# qosd's policy daemon (qos daemon) as a system service. What each setting is for:
# docs/install.md. Reload the policy: systemctl reload qosd (SIGHUP).
[Unit]
Description=qosd policy daemon: quality of service for unmodified applications
Documentation=${o.documentation.join(' ')}

[Service]
Type=simple
ExecStart=${o.execStart.map(systemdQuote).join(' ')}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2s
# Agents wait at most 50 ms for an answer: the daemon runs ahead of the programs it serves.
Nice=-10
# One descriptor per agent connection; the daemon asks for this many.
LimitNOFILE=${LIMIT_NOFILE}
# /run/qosd: the agent and admin sockets and the generation file; every user's programs reach
# the agent socket.
RuntimeDirectory=qosd
RuntimeDirectoryMode=0755
# /var/lib/qosd: the kernel rule store (qos rules) and qos install's record.
StateDirectory=qosd
StateDirectoryMode=0755
UMask=0022
# The daemon runs as root (agents in setuid programs trust only a root daemon) with only:
${caps.join('\n')}
CapabilityBoundingSet=${CAPABILITIES.map(([c]) => c).join(' ')}
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
# Unix sockets (agents, admin API) and netlink (nft); the daemon opens no inet socket.
RestrictAddressFamilies=${ADDRESS_FAMILIES.join(' ')}
IPAddressDeny=any
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
# Not set, on purpose: ProtectProc=invisible and ProcSubset=pid (the daemon reads /proc/PID of
# every program that asks), PrivateNetwork and PrivateUsers (nftables and uids are the host's),
# MemoryDenyWriteExecute (V8 compiles code at run time).

[Install]
WantedBy=multi-user.target
`;
}

/** The text of qosd.conf (tmpfiles.d): /run/qosd from boot, root's, reachable by all. */
export const TMPFILES_TEXT = `# qosd: the directory of the policy daemon's sockets (qos daemon), root's, reachable by every
# user's programs. qosd.service's RuntimeDirectory= makes it too, and writable under
# ProtectSystem=strict; this makes it exist from boot with this owner and mode.
d /run/qosd 0755 root root -
`;
