/* Programs a local user runs against the daemon's agent socket, for `qos bench hostile` and the
 * hostile-user tests: run as that user (setpriv), they speak the agent protocol directly.
 *
 *   hold SOCKET N            open N connections and keep them; prints {"attempted":N} once
 *                            every attempt ended, then waits until stdin closes
 *   garbage SOCKET K         K connections writing malformed lines, each reopened when the
 *                            daemon closes it, until stdin closes; prints {"connections":n}
 *   requests SOCKET K        K connections, each sending well-formed requests (Bind) 1,000 at
 *                            a time as fast as the daemon answers them, until stdin closes;
 *                            prints {"answered":n}
 *   abuse SOCKET K           K connections, each asking Connect to port 1 and 2 in turn (a
 *                            policy script may spin or hang on them), one at a time, until
 *                            stdin closes; prints {"asked":n}
 *   startups SOCKET K N      K connections, each sending N Startup lines, reading the replies
 *   sockets SOCKET N         N Socket lines on one connection (fds 10..), reading the replies
 *   ask SOCKET N [LINES]     N requests in turn, one after the other, each waiting for its
 *                            reply: LINES is one or more request lines joined by " | ", taken
 *                            in turn, %d in them the round (a descriptor number from 3); the
 *                            default is a Bind. Prints {"replies":[...distinct, without CACHE,
 *                            "" for none...],"counts":{reply:n},"answered":n,"ms":[...each...]}
 * Everything it prints is one JSON object per line on stdout. */

import { connect, type Socket } from 'node:net';
import { LineClient } from '../daemon/line-client.js';

const [mode, path, a = '0', b = '0'] = process.argv.slice(2);
const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
const stdinClosed = () => new Promise<void>((r) => { process.stdin.resume(); process.stdin.once('end', () => r()); process.stdin.once('close', () => r()); });

async function hold(n: number): Promise<void> {
  const socks: Socket[] = [];
  let ended = 0;
  await new Promise<void>((done) => {
    const settle = () => { if (++ended === n) done(); };
    // A full listen queue refuses at once (EAGAIN on a Unix socket): try again until the
    // daemon has seen every attempt.
    const one = () => {
      const s = connect(path!);
      s.once('connect', settle);
      s.once('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EAGAIN') setTimeout(one, 1); else settle(); });
      socks.push(s);
    };
    for (let i = 0; i < n; i++) one();
  });
  out({ attempted: n });
  await stdinClosed();
  for (const s of socks) s.destroy();
}

async function garbage(k: number): Promise<void> {
  let connections = 0, stop = false;
  const junk = Buffer.from('x\n{{{ not a message\nConnect 1 0 a 5 {{{{\n'.repeat(2000));
  const open = new Set<Socket>();
  const one = () => {
    if (stop) return;
    connections++;
    const s = connect(path!);
    open.add(s);
    s.on('error', () => undefined);
    s.on('data', () => undefined);
    const pump = () => { while (!stop && !s.destroyed && s.write(junk)); };
    s.on('connect', pump);
    s.on('drain', pump);
    s.once('close', () => { open.delete(s); setImmediate(one); });
  };
  for (let i = 0; i < k; i++) one();
  out({ started: true });
  await stdinClosed();
  stop = true;
  // a connection opened just before the stop has sent nothing the daemon would close it for
  for (const s of open) s.destroy();
  out({ connections });
}

async function requests(k: number): Promise<void> {
  let answered = 0, stop = false;
  const batch = Array.from({ length: 1000 }, (_, i) => `Bind ${process.pid} 0 x ${3 + i} {2 0.0.0.0 1}\n`).join('');
  out({ started: true });
  const done = stdinClosed().then(() => { stop = true; });
  await Promise.all(Array.from({ length: k }, async () => {
    const c = new LineClient(path!);
    while (!stop) {
      c.sock.write(batch);
      let i = 0;
      for (; i < 1000; i++) if ((await Promise.race([c.next(), done.then(() => null)])) === null) break;
      answered += i;
      if (i < 1000) break;
    }
    c.sock.destroy();
  }));
  out({ answered });
}

async function abuse(k: number): Promise<void> {
  let asked = 0, stop = false;
  out({ started: true });
  const done = stdinClosed().then(() => { stop = true; });
  await Promise.all(Array.from({ length: k }, async (_, w) => {
    const c = new LineClient(path!);
    for (let i = 0; !stop; i++) {
      c.sock.write(`Connect ${process.pid} 0 x ${10 + w} {2 192.0.2.1 ${1 + (i % 2)}} {} {}\n`);
      if ((await Promise.race([c.next(), done.then(() => null)])) === null) break;
      asked++;
    }
    c.sock.destroy();
  }));
  out({ asked });
}

async function startups(k: number, n: number): Promise<void> {
  await Promise.all(Array.from({ length: k }, async () => {
    const c = new LineClient(path!);
    c.sock.write(`Startup ${process.pid} 0 x 1\n`.repeat(n));
    for (let i = 0; i < n; i++) if ((await c.next()) === null) break;
    c.sock.destroy();
  }));
  out({ done: k * n });
}

async function sockets(n: number): Promise<void> {
  const c = new LineClient(path!);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(`Socket ${process.pid} 0 x 2 1 0 ${10 + i}\n`);
  c.sock.write(lines.join(''));
  let answered = 0;
  for (let i = 0; i < n; i++) { if ((await c.next()) === null) break; answered++; }
  c.sock.destroy();
  out({ answered });
}

async function ask(n: number, template: string): Promise<void> {
  const c = new LineClient(path!);
  const lines = template.split(' | ');
  const counts: Record<string, number> = {};
  const ms: number[] = [];
  let answered = 0;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    c.sock.write(lines[i % lines.length]!.replaceAll('%d', String(3 + Math.floor(i / lines.length))) + '\n');
    const r = await c.next();
    if (r === null) break;
    ms.push(performance.now() - t0);
    const reply = r.replace(/(^| )CACHE \d+$/, '');
    counts[reply] = (counts[reply] ?? 0) + 1;
    answered++;
  }
  c.sock.destroy();
  out({ replies: Object.keys(counts), counts, answered, ms });
}

switch (mode) {
  case 'hold': await hold(Number(a)); break;
  case 'garbage': await garbage(Number(a)); break;
  case 'requests': await requests(Number(a)); break;
  case 'abuse': await abuse(Number(a)); break;
  case 'startups': await startups(Number(a), Number(b)); break;
  case 'sockets': await sockets(Number(a)); break;
  case 'ask': await ask(Number(a), process.argv[5] ?? 'Bind 1 0 x %d {2 0.0.0.0 5000}'); break;
  default:
    process.stderr.write('usage: hostile-client.js hold|garbage|requests|abuse|startups|sockets|ask SOCKET ...\n');
    process.exitCode = 64;
}
