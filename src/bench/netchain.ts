/* Network namespaces in a line joined by veth pairs, the middle ones routers (forwarding on),
 * for RSVP's tests and benchmark: sender — r1 — r2 — receiver. Link i (from 1) is the subnet
 * 10.251.i.0/24, its left end .1 and its right end .2; each end's device is named after its
 * node and side (r1a faces the sender, r1b the receiver). Named PREFIX<pid>-NODE, so
 * removeStale(PREFIX) finds those of a killed run; destroy() removes them and what runs in them. */

import { must, removeNamespace } from '../demo/net.js';

export interface ChainNode {
  /** the node's name in the chain (sender, r1, ...) */
  name: string;
  /** its network namespace */
  ns: string;
  /** the device toward the sender (null for the sender) and toward the receiver (null for the receiver) */
  left: { dev: string; ip: string } | null;
  right: { dev: string; ip: string } | null;
}

export class NetChain {
  readonly tag: string;
  readonly nodes: ChainNode[] = [];
  private made: string[] = [];

  /** names: the nodes from sender to receiver; the ones between are routers */
  constructor(prefix: string, names: string[] = ['sender', 'r1', 'r2', 'receiver']) {
    this.tag = `${prefix}${process.pid}`;
    try {
      for (const name of names) {
        const ns = `${this.tag}-${name}`;
        must(['ip', 'netns', 'add', ns]);
        this.made.push(ns);
        must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
        this.nodes.push({ name, ns, left: null, right: null });
      }
      const short = (n: ChainNode) => n.name.replace(/[^a-z0-9]/g, '').slice(0, 10);
      for (let i = 0; i + 1 < this.nodes.length; i++) {
        const [a, b] = [this.nodes[i]!, this.nodes[i + 1]!];
        a.right = { dev: `${short(a)}b`, ip: `10.251.${i + 1}.1` };
        b.left = { dev: `${short(b)}a`, ip: `10.251.${i + 1}.2` };
        must(['ip', 'link', 'add', a.right.dev, 'netns', a.ns, 'type', 'veth', 'peer', 'name', b.left.dev, 'netns', b.ns]);
        for (const [n, end] of [[a, a.right], [b, b.left]] as const) {
          must(['ip', '-n', n.ns, 'addr', 'add', `${end.ip}/24`, 'dev', end.dev]);
          must(['ip', '-n', n.ns, 'link', 'set', end.dev, 'up']);
        }
      }
      const last = this.nodes.length - 1;
      for (const [i, n] of this.nodes.entries()) {
        // each subnet not on a node's links goes toward its side of the chain
        for (let link = 1; link <= last; link++) {
          if (link === i || link === i + 1) continue;
          const via = link <= i ? `10.251.${i}.1` : `10.251.${i + 1}.2`;
          must(['ip', '-n', n.ns, 'route', 'add', `10.251.${link}.0/24`, 'via', via]);
        }
        if (i > 0 && i < last) must(['ip', 'netns', 'exec', n.ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
      }
    } catch (e) {
      this.destroy();
      throw e;
    }
  }

  node(name: string): ChainNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name} in the chain (${this.nodes.map((x) => x.name).join(', ')})`);
    return n;
  }

  destroy(): void {
    for (const ns of this.made.splice(0).reverse()) removeNamespace(ns);
  }
}
