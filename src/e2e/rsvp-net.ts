/* What the RSVP end-to-end tests share: a `qos rsvp router` in a namespace with its JSON-line
 * events collected as they come, a sink counting datagrams per port, and a capture read back
 * through tshark. */

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { run, start, type Child } from '../exec.js';
import { QOS, sh, stopAtEndMark } from './harness.js';

export interface RouterProc { child: Child; events: Record<string, unknown>[] }

/** `qos rsvp router --json ARGS` in network namespace ns; its events are pushed as they print. */
export function startRsvpRouter(ns: string, name: string, args: string[]): RouterProc {
  const child = start(['ip', 'netns', 'exec', ns, process.execPath, QOS, 'rsvp', 'router', '--json', ...args], { name: `rsvp router ${name}` });
  const r: RouterProc = { child, events: [] };
  let buf = '';
  child.proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim()) r.events.push(JSON.parse(line) as Record<string, unknown>);
    }
  });
  return r;
}

/** Counts datagrams per port (ARGV[2:]) until ARGV[1] seconds pass with none after the first;
 * prints "ready", then the counts as one JSON object. */
export const COUNT_SINK = `import json, select, socket, sys, time
idle = float(sys.argv[1]); counts = {}; socks = {}
for p in sys.argv[2:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('', int(p))); socks[s] = p; counts[p] = 0
print('ready', flush=True)
deadline = time.time() + 120; last = None
while True:
    now = time.time()
    for s in select.select(list(socks), [], [], 0.2)[0]:
        s.recv(65536); counts[socks[s]] += 1; last = now
    if (last is not None and now - last > idle) or now > deadline: break
print(json.dumps(counts), flush=True)
`;

/** The capture's end mark: an Ethernet frame of the local experimental EtherType 0x88b5, sent
 * on the captured interface, that every capture takes besides its own filter and that fields()
 * leaves out (no IP stack, RSVP node or router reads it). */
const MARK_TYPE = '0x88b5';
const SEND_MARK = `import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
s.send(b'\\xff' * 6 + b'\\x02\\x00\\x00\\x00\\x00\\x01' + b'\\x88\\xb5' + sys.argv[2].encode())
`;

/** tcpdump on dev in ns into a file in dir, until fields(); then the packets as tshark decodes them. */
export class Capture {
  private readonly child: Child;
  readonly file: string;
  constructor(readonly ns: string, readonly dev: string, filter: string, dir: string) {
    this.file = join(dir, `${dev}-${readdirSync(dir).length}.pcap`);
    this.child = start(['tcpdump', '-i', dev, '-n', '-U', '--immediate-mode', '-w', this.file, `(${filter}) or (ether proto ${MARK_TYPE})`], { netns: ns, pkg: 'tcpdump', name: `tcpdump on ${dev}` });
  }
  started(): Promise<void> { return this.child.until('listening on', 10_000); }
  /** Stops the capture; one line per packet: the fields asked for, separated by |. Every packet
   * on the interface before the call is in it: an end mark is sent after them, and tcpdump is
   * stopped only once it has written that mark (a waiting time would be a guess, too short on a
   * loaded machine, where tcpdump may not have read what the kernel holds for it yet). */
  async fields(fields: string[], decodeAs: string[] = []): Promise<string[]> {
    await stopAtEndMark(this.child, this.file, (mark) => sh(['ip', 'netns', 'exec', this.ns, 'python3', '-c', SEND_MARK, this.dev, mark]));
    const r = await run(['tshark', '-n', '-r', this.file, '-Y', `!(eth.type == ${MARK_TYPE})`, ...decodeAs.flatMap((d) => ['-d', d]), '-T', 'fields', '-E', 'separator=|', ...fields.flatMap((f) => ['-e', f])], { timeoutMs: 60_000 });
    return r.stdout.split('\n').filter(Boolean);
  }
}
