/* The network interfaces (links) as iproute2 reports them, and what changed between two views
 * of them (pure): a line of `ip -o monitor link`, the JSON of `ip -j link show`, and the events
 * a watcher (link-watch.ts) gives its subscribers: added, removed, renamed, up, down.
 *
 * iproute2 6.1 prints `ip monitor` as text even with -j (JSON monitoring came later), so lines
 * are parsed: `[Deleted ]IFINDEX: NAME[@PEER]: <FLAGS> mtu ... qdisc Q ... group G ...`, one
 * message a line with -o. The kernel sends RTM_NEWLINK/RTM_DELLINK of other families to the
 * same group: AF_BRIDGE for a bridge port (a port leaving its bridge is a "Deleted" message
 * of a link that stays) and AF_INET6 link information. Only the family-less messages of
 * rtnl_fill_ifinfo (net/core/rtnetlink.c) carry IFLA_GROUP and IFLA_QDISC, which ip prints as
 * `group` and `qdisc`; a line without `group` is another family's, and says nothing of the
 * link's existence. */

/** A network interface: its index (stable for its life, never reused soon), name and whether
 * it is administratively up (IFF_UP: `ip link set dev X up`). */
export interface Link { index: number; name: string; up: boolean }

/** What happened to a link. `removed` carries the link as it was last known; `renamed` the new
 * name in `link` and the old in `from` (same index). */
export type LinkEvent =
  | { kind: 'added'; link: Link }
  | { kind: 'removed'; link: Link }
  | { kind: 'renamed'; link: Link; from: string }
  | { kind: 'up'; link: Link }
  | { kind: 'down'; link: Link };

/** One `ip -o monitor link` line: the link's state, or its deletion; null for a line that is
 * not a link message of the family-less kind (another family's, or not a link line at all). */
export interface MonitorLine { deleted: boolean; index: number; link: Link }

const LINE = /^(Deleted )?(\d+): ([^\s:]+): <([^>]*)>(.*)$/;

/** Parses one line of `ip -o monitor link`. `known` is the name the watcher knows for an index:
 * ip writes NAME@PEER for a link with a peer (a veth, a VLAN's parent), and a name may itself
 * hold '@', so the known name is taken when the text starts with it; otherwise the text up to
 * its last '@'. */
export function parseMonitorLine(line: string, known?: (index: number) => string | undefined): MonitorLine | null {
  const m = LINE.exec(line.trim());
  if (!m) return null;
  const rest = m[5]!.split(' \\')[0]!;
  if (!/ group \S+/.test(rest)) return null; // AF_BRIDGE or AF_INET6: not the link itself
  const index = Number(m[2]);
  const text = m[3]!;
  const was = known?.(index);
  const name = was !== undefined && (text === was || text.startsWith(`${was}@`)) ? was : text.includes('@') ? text.slice(0, text.lastIndexOf('@')) : text;
  if (!name) return null;
  const up = m[4]!.split(',').includes('UP');
  return { deleted: m[1] !== undefined, index, link: { index, name, up } };
}

/** The links of `ip -j link show`. */
export function parseSnapshot(json: string): Link[] {
  const all = JSON.parse(json || '[]') as Array<{ ifindex?: unknown; ifname?: unknown; flags?: unknown }>;
  if (!Array.isArray(all)) throw new Error('ip -j link show: not a JSON array');
  return all.filter((l) => Number.isInteger(l.ifindex) && typeof l.ifname === 'string')
    .map((l) => ({ index: l.ifindex as number, name: l.ifname as string, up: Array.isArray(l.flags) && l.flags.includes('UP') }));
}

/** The events that take `known` to `now`: removals first (a name they free may be taken by a
 * rename or an addition), then renames, additions, and up/down of links that stayed. Renames
 * are ordered so that none takes a name another known link still holds; links whose names
 * went round a cycle (a swap, seen only in a snapshot, since the kernel lets two links share
 * no name and the monitor sees each step) are given as removed and added again. */
export function diffLinks(known: ReadonlyMap<number, Link>, now: readonly Link[]): LinkEvent[] {
  const out: LinkEvent[] = [];
  const seen = new Map(now.map((l) => [l.index, l]));
  for (const [index, l] of known) if (!seen.has(index)) out.push({ kind: 'removed', link: l });
  let renames = now.filter((l) => known.has(l.index) && known.get(l.index)!.name !== l.name);
  const held = new Set([...known.values()].filter((l) => seen.has(l.index)).map((l) => l.name));
  const readded: Link[] = [];
  while (renames.length) {
    const free = renames.filter((l) => !held.has(l.name));
    if (!free.length) {
      // a cycle: the first goes and comes back under its new name
      const [first, ...rest] = renames;
      out.push({ kind: 'removed', link: known.get(first!.index)! });
      held.delete(known.get(first!.index)!.name);
      readded.push(first!);
      renames = rest;
      continue;
    }
    for (const l of free) {
      const from = known.get(l.index)!.name;
      out.push({ kind: 'renamed', link: l, from });
      held.delete(from);
      held.add(l.name);
    }
    renames = renames.filter((l) => !free.includes(l));
  }
  for (const l of [...now.filter((x) => !known.has(x.index)), ...readded]) out.push({ kind: 'added', link: l });
  for (const l of now) {
    const k = known.get(l.index);
    if (k && !readded.includes(l) && k.up !== l.up) out.push({ kind: l.up ? 'up' : 'down', link: l });
  }
  return out;
}

/** The events one monitor line makes of what is known (or none: nothing that matters changed). */
export function eventsOf(known: ReadonlyMap<number, Link>, m: MonitorLine): LinkEvent[] {
  const k = known.get(m.index);
  if (m.deleted) return k ? [{ kind: 'removed', link: k }] : [];
  if (!k) return [{ kind: 'added', link: m.link }];
  const out: LinkEvent[] = [];
  if (k.name !== m.link.name) out.push({ kind: 'renamed', link: m.link, from: k.name });
  if (k.up !== m.link.up) out.push({ kind: m.link.up ? 'up' : 'down', link: m.link });
  return out;
}

/** Applies an event to a table of links by index. */
export function applyEvent(links: Map<number, Link>, e: LinkEvent): void {
  if (e.kind === 'removed') links.delete(e.link.index);
  else links.set(e.link.index, e.link);
}

/** Of the monitor lines read while a snapshot was being taken, the last of each link, in the
 * order of those last lines. A line read before the snapshot's dump describes a state the dump
 * shows (or an older one, followed by a later line of the same link); the last line of a link
 * is its newest state either way, so applying only it after the snapshot's diff changes
 * nothing that the dump already had and loses nothing that came after it. */
export function lastOfEach(lines: readonly MonitorLine[]): MonitorLine[] {
  const last = new Map<number, MonitorLine>();
  for (const l of lines) { last.delete(l.index); last.set(l.index, l); }
  return [...last.values()];
}

/** Whether the netlink socket of process `pid` listens to a route group, from
 * /proc/PID/net/netlink (columns: sk Eth Pid Groups ...; a socket's port id is its process's
 * pid for the first one it binds, Eth 0 is NETLINK_ROUTE, Groups the first 32 groups' bits):
 * `ip monitor` has subscribed, and no change is missed from then on. */
export function netlinkSubscribed(table: string, pid: number): boolean {
  return table.split('\n').slice(1).some((line) => {
    const f = line.trim().split(/\s+/);
    return f[1] === '0' && f[2] === String(pid) && /^[0-9a-f]+$/i.test(f[3] ?? '') && parseInt(f[3]!, 16) !== 0;
  });
}
