import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { Gauge } from 'prom-client';
import type { Registry } from 'prom-client';

/** The warm-up phases, in order, then the states after it. */
export type Phase = 'starting' | 'migrating' | 'loading' | 'catching-up' | 'ready' | 'unready' | 'failed';

/** What `/readyz` and the status stream report. */
export interface ReadinessStatus {
  status: 'warming' | 'ready' | 'unready' | 'failed';
  phase: Phase;
  node: string;
  /** Rows loaded so far in the loading phase, by kind, and the totals when known. */
  progress: { loaded: Record<string, number>; total: Record<string, number> };
  /** The node's cache cursor and the log head it is catching up to. */
  cursor: number | null;
  head: number | null;
  /** Milliseconds since the process started warming up. */
  elapsedMs: number;
  /** Duration of each finished phase, in milliseconds. */
  phases: Record<string, number>;
  /** Why the node is not ready (after warm-up), or why warm-up failed. */
  reason: string | null;
}

/**
 * A node's readiness: warming (with progress) until migrations are done, the caches are loaded at
 * a log position and the node has caught up from it to the head; then ready; unready again when its
 * log tail stops advancing while the head moves, or the database is unreachable. Every change is
 * emitted to subscribers (the status stream) at once, progress at most every `progressEveryMs`.
 */
export class Readiness {
  private readonly emitter = new EventEmitter().setMaxListeners(0);
  private readonly started = Date.now();
  private phaseStarted = Date.now();
  private current: Phase = 'starting';
  private readonly phases: Record<string, number> = {};
  private readonly loaded: Record<string, number> = {};
  private readonly total: Record<string, number> = {};
  private cursor: number | null = null;
  private head: number | null = null;
  private why: string | null = null;
  private warmedUp = false;
  private lastProgressEmit = 0;
  private readonly gauges;

  constructor(
    private readonly node: string,
    registry: Registry,
    private readonly logger: Logger,
    private readonly opts: { slowWarmupMs: number; progressEveryMs?: number },
  ) {
    const registers = [registry];
    this.gauges = {
      ready: new Gauge({ name: 'concord_ready', help: '1 while the node serves data requests.', registers }),
      phase: new Gauge({
        name: 'concord_warmup_phase_seconds',
        help: 'Duration of each warm-up phase of this process.',
        labelNames: ['phase'],
        registers,
      }),
      total: new Gauge({
        name: 'concord_warmup_seconds',
        help: 'Total warm-up time of this process.',
        registers,
      }),
      slow: new Gauge({
        name: 'concord_warmup_slow',
        help: '1 when warm-up took (or is taking) longer than the configured threshold.',
        registers,
      }),
    };
    this.gauges.ready.set(0);
    const slowTimer = setTimeout(() => {
      if (this.warmedUp) return;
      this.gauges.slow.set(1);
      this.logger.warn(
        { phase: this.current, elapsedMs: Date.now() - this.started, thresholdMs: opts.slowWarmupMs },
        'warm-up is taking longer than the configured threshold',
      );
    }, opts.slowWarmupMs);
    slowTimer.unref();
  }

  /** Whether data requests may be answered now. */
  get isReady(): boolean {
    return this.current === 'ready';
  }

  /** Enters a warm-up phase, recording how long the previous one took. */
  enter(phase: Phase): void {
    const now = Date.now();
    if (!this.warmedUp && this.current !== 'starting') {
      const ms = now - this.phaseStarted;
      this.phases[this.current] = ms;
      this.gauges.phase.labels(this.current).set(ms / 1000);
    }
    this.phaseStarted = now;
    this.current = phase;
    this.logger.info({ phase }, 'warm-up phase');
    this.emit();
  }

  /** Reports loading progress (throttled on the status stream). */
  progress(kind: string, loaded: number, total?: number): void {
    this.loaded[kind] = loaded;
    if (total !== undefined) this.total[kind] = total;
    const now = Date.now();
    if (now - this.lastProgressEmit >= (this.opts.progressEveryMs ?? 100)) {
      this.lastProgressEmit = now;
      this.emit();
    }
  }

  /** Reports the cache cursor and the head it is catching up to. */
  position(cursor: number, head: number): void {
    const changed = cursor !== this.cursor || head !== this.head;
    this.cursor = cursor;
    this.head = head;
    if (changed && !this.warmedUp) this.progressEmit();
  }

  /** Warm-up is complete: the node serves data requests from now on. */
  ready(): void {
    if (!this.warmedUp) {
      this.enter('ready');
      this.warmedUp = true;
      const totalMs = Date.now() - this.started;
      this.gauges.total.set(totalMs / 1000);
      if (totalMs > this.opts.slowWarmupMs) {
        this.gauges.slow.set(1);
        this.logger.warn(
          { totalMs, thresholdMs: this.opts.slowWarmupMs, phases: this.phases },
          'slow warm-up',
        );
      } else this.gauges.slow.set(0);
      this.logger.info({ totalMs, phases: this.phases }, 'node is ready');
    } else if (this.current !== 'ready') {
      this.logger.info({ after: this.why }, 'node is ready again');
      this.current = 'ready';
      this.why = null;
      this.emit();
    }
    this.gauges.ready.set(1);
  }

  /** After warm-up: stop serving data requests, saying why (logged once per cause). */
  unready(reason: string): void {
    if (!this.warmedUp) return;
    if (this.current === 'unready' && this.why === reason) return;
    this.current = 'unready';
    this.why = reason;
    this.gauges.ready.set(0);
    this.logger.warn({ reason }, 'node is not ready');
    this.emit();
  }

  /** Warm-up failed; the process is about to exit. */
  failed(reason: string): void {
    this.current = 'failed';
    this.why = reason;
    this.emit();
  }

  status(): ReadinessStatus {
    return {
      status:
        this.current === 'ready'
          ? 'ready'
          : this.current === 'unready'
            ? 'unready'
            : this.current === 'failed'
              ? 'failed'
              : 'warming',
      phase: this.current,
      node: this.node,
      progress: { loaded: { ...this.loaded }, total: { ...this.total } },
      cursor: this.cursor,
      head: this.head,
      elapsedMs: Date.now() - this.started,
      phases: { ...this.phases },
      reason: this.why,
    };
  }

  /** Calls `listener` with every status change; returns the unsubscribe function. */
  subscribe(listener: (status: ReadinessStatus) => void): () => void {
    this.emitter.on('status', listener);
    return () => this.emitter.off('status', listener);
  }

  private progressEmit(): void {
    const now = Date.now();
    if (now - this.lastProgressEmit >= (this.opts.progressEveryMs ?? 100)) {
      this.lastProgressEmit = now;
      this.emit();
    }
  }

  private emit(): void {
    this.emitter.emit('status', this.status());
  }
}
