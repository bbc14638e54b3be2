/* A followed admin stream (`qos decisions --follow`, `qos rsvp events --follow`): newline-
 * delimited JSON, the recent items first, then (follow) each new one as it comes. A follower
 * that does not read must not make the daemon keep what it has not read: past FOLLOW_BUFFER
 * bytes unread, new items are dropped, counted, and the follower told how many when it
 * catches up. */

import type { IncomingMessage, ServerResponse } from 'node:http';

/** Bytes a follower may leave unread before items are dropped for it. */
export const FOLLOW_BUFFER = 1 << 20;

export interface FollowOptions<T> {
  /** what is sent first */
  first: Iterable<T>;
  /** one item as its line (without newline): made only for an item that is sent */
  render: (t: T) => string;
  /** whether to keep the stream open for new items */
  follow: boolean;
  /** starts handing new items to push; returns what stops it */
  subscribe: (push: (t: T) => void) => () => void;
  /** the items' name in the dropped notice ("decisions") */
  what: string;
  onDropped?: (n: number) => void;
}

export function followStream<T>(req: IncomingMessage | NodeJS.EventEmitter, res: ServerResponse, o: FollowOptions<T>): void {
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  res.flushHeaders(); // a follower of a quiet daemon learns at once that it is following
  for (const t of o.first) res.write(o.render(t) + '\n');
  if (!o.follow) { res.end(); return; }
  let dropped = 0;
  const notice = () => {
    if (!dropped) return;
    res.write(JSON.stringify({ dropped, message: `${dropped} ${o.what} dropped: this reader fell behind` }) + '\n');
    dropped = 0;
  };
  const stop = o.subscribe((t) => {
    if (res.writableLength > FOLLOW_BUFFER) { dropped++; o.onDropped?.(1); return; }
    notice();
    res.write(o.render(t) + '\n');
  });
  res.on('drain', notice);
  req.on('close', stop);
}
