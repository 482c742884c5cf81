import type { Change } from './change.js';
import type { ChangeLog } from './log.js';

/** How a consumer learns of changes. */
export interface LogTailOptions {
  /** Names the consumer in metrics and logs. */
  name: string;
  /** Start after this seq. */
  from: number;
  /** Applies a batch of consecutive changes; the cursor moves past them once it resolves. */
  apply(changes: Change[]): Promise<void> | void;
  /**
   * The entries after the cursor were pruned: the consumer must rebuild its state (flush a
   * cache, drop a queue). `oldest` is the oldest retained seq (the head + 1 when none after the
   * cursor is retained). Returns the seq to continue after. Without it the tail throws.
   */
  reset?(info: { cursor: number; oldest: number }): Promise<number> | number;
  /** The safety-net poll interval, for when a ring is lost. */
  pollMs: number;
  batchSize?: number;
  /** Reports `head - cursor` after every pass. */
  onLag?(lag: number, cursor: number, head: number): void;
  onError?(err: unknown): void;
}

/**
 * A consumer's cursor over the change log. It reads `changes WHERE seq > cursor` whenever the
 * doorbell rings and on a slow poll; entries arrive exactly once, in seq (= commit) order. Since
 * seqs are contiguous, a first entry beyond `cursor + 1` (or none while the head is past the
 * cursor) means the log was pruned past the cursor.
 */
export class LogTail {
  private cursorSeq: number;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = true;
  private unsubscribe: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private waiters: { seq: number; resolve: () => void }[] = [];
  private headSeq = 0;

  constructor(
    private readonly log: ChangeLog,
    private readonly opts: LogTailOptions,
  ) {
    this.cursorSeq = opts.from;
  }

  get name(): string {
    return this.opts.name;
  }

  /** The seq of the last change applied. */
  get cursor(): number {
    return this.cursorSeq;
  }

  /** The newest head this tail has seen. */
  get head(): number {
    return this.headSeq;
  }

  /** Starts following the log. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.unsubscribe = this.log.doorbell.subscribe((seq) => {
      if (seq === null || seq > this.cursorSeq) this.poke();
    });
    const tick = () => {
      this.poke();
      this.timer = setTimeout(tick, this.opts.pollMs);
      this.timer.unref();
    };
    tick();
  }

  /** Stops following and waits for a pass in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  /** Reads and applies everything committed so far; resolves when the cursor reached it. */
  async catchUp(): Promise<void> {
    const head = await this.log.head();
    this.poke();
    await this.waitFor(head);
  }

  /** Resolves once the cursor is at or past `seq`. */
  waitFor(seq: number): Promise<void> {
    if (this.cursorSeq >= seq) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push({ seq, resolve });
      this.poke();
    });
  }

  private poke(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pump()
      .catch((err) => this.opts.onError?.(err))
      .finally(() => {
        this.running = null;
        if (this.again && !this.stopped) {
          this.again = false;
          this.poke();
        }
      });
  }

  private async pump(): Promise<void> {
    const batchSize = this.opts.batchSize ?? 1000;
    for (;;) {
      this.again = false;
      let changes = await this.log.readSince(this.cursorSeq, batchSize);
      let oldest = changes[0]?.seq;
      if (oldest === undefined) {
        // Nothing after the cursor: caught up, unless the head is past it and everything in
        // between was pruned (an idle log pruned by age). The head may have moved since the
        // read, so read again: entries up to that head have committed and would be visible.
        const head = await this.log.head();
        if (head <= this.cursorSeq) break;
        changes = await this.log.readSince(this.cursorSeq, batchSize);
        oldest = changes[0]?.seq ?? head + 1;
      }
      if (oldest !== this.cursorSeq + 1) {
        if (!this.opts.reset) throw new Error(`consumer ${this.opts.name} fell behind the retained log`);
        this.cursorSeq = await this.opts.reset({ cursor: this.cursorSeq, oldest });
        continue;
      }
      await this.opts.apply(changes);
      this.cursorSeq = changes[changes.length - 1]!.seq;
      this.release();
      if (changes.length < batchSize) break;
    }
    this.headSeq = Math.max(this.headSeq, await this.log.head(), this.cursorSeq);
    this.release();
    this.opts.onLag?.(this.headSeq - this.cursorSeq, this.cursorSeq, this.headSeq);
  }

  private release(): void {
    if (this.waiters.length === 0) return;
    const ready = this.waiters.filter((w) => w.seq <= this.cursorSeq);
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.seq > this.cursorSeq);
    for (const w of ready) w.resolve();
  }
}
