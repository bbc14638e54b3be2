/* The policy used when `qos daemon` is given none (docs/policy.md explains each rule).
 * Classes follow RFC 4594's service classes; LE is RFC 8622's lower-effort PHB. */

export const DEFAULT_POLICY_TEXT = `# qosd built-in policy: marks well-known traffic by RFC 4594 service class.
# Traffic no rule matches is left alone (no default).
rules:
  # Bulk copies first: scp/sftp/rsync ride on ssh but are not interactive.
  - name: bulk-by-program
    match: { cmdline: ["*/rsync *", "rsync *", "scp *", "*/scp *", "sftp *", "*/sftp *", "restic *", "*/restic *", "borg *", "*/borg *", "rclone *", "*/rclone *"] }
    action: { dscp: LE }
  - name: package-downloads
    match: { exe: ["/usr/lib/apt/methods/*", "/usr/bin/apt*", "/usr/bin/dnf*", "/usr/bin/yum"] }
    action: { dscp: LE }
  - name: voip-signalling
    match: { remote_port: [5060, 5061] }
    action: { dscp: CS5 }
  - name: conferencing-media
    match: { proto: udp, remote_port: ["3478-3481", "8801-8810", "19302-19309"] }
    action: { dscp: AF41 }
  - name: streaming-control
    match: { proto: tcp, remote_port: 554 }
    action: { dscp: AF31 }
  - name: interactive-shell
    match: { proto: tcp, remote_port: [22, 23] }
    action: { dscp: AF21 }
  - name: name-resolution
    match: { remote_port: [53, 853] }
    action: { dscp: AF21 }
  - name: network-operations
    match: { proto: udp, remote_port: [123, 161, 162, 514] }
    action: { dscp: CS2 }
`;
