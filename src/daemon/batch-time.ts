/* Wall-clock time for what the daemon records about a call (a flow's created and updated, a
 * decision's `at`), read once per batch of messages handled together, not once per use:
 * Date.now() costs ~80 ns on this machine's virtual clock, and a cached connect read it five
 * times. The messages of one batch (one read of a connection's lines, one ring's records)
 * arrived together, so one time stands for all of them. Outside a batch, now() is Date.now(). */

export class BatchTime {
  private t = 0;
  private depth = 0;

  /** The batch's time, or the current time outside a batch. */
  readonly now = (): number => (this.depth > 0 ? this.t : Date.now());

  /** Starts a batch (nested batches keep the outer one's time); end() it, also on a throw. */
  begin(): void {
    if (this.depth++ === 0) this.t = Date.now();
  }

  end(): void {
    if (this.depth > 0) this.depth--;
  }
}
