/* A loopback TCP port of another network namespace, reached from the test's own: socat in
 * the namespace joins a Unix socket (a file: no namespace owns it) to the port, and a server
 * in the test joins a loopback port here to that socket. A browser here can then open a
 * dashboard whose daemon must run in a test namespace (its nftables table acts there). */

import { existsSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { start } from '../exec.js';
import { waitFor } from './harness.js';

export interface Bridge { port: number; close(): Promise<void> }

let bridges = 0;

/** Port `port` of 127.0.0.1 in namespace `ns`, as a port of 127.0.0.1 here; `dir` holds the
 * Unix socket between the two. */
export async function bridgeInto(ns: string, port: number, dir: string): Promise<Bridge> {
  const sock = join(dir, `bridge${++bridges}.sock`);
  const socat = start(['socat', `UNIX-LISTEN:${sock},fork,unlink-early`, `TCP4:127.0.0.1:${port}`], { netns: ns, name: 'socat (bridge)' });
  await waitFor(`socat listening on ${sock}`, () => existsSync(sock));
  const open = new Set<Socket>();
  const server: Server = createServer((here) => {
    const there = connect(sock);
    open.add(here); open.add(there);
    here.pipe(there); there.pipe(here);
    const end = () => { here.destroy(); there.destroy(); open.delete(here); open.delete(there); };
    here.on('error', end); there.on('error', end); here.on('close', end); there.on('close', end);
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', resolve); });
  return {
    port: (server.address() as { port: number }).port,
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await socat.stop('SIGTERM');
    },
  };
}
