import type { Logger } from 'pino';
import type { ChangeLog } from '../../changelog/log.js';
import type { JobMetrics } from '../../observability/metrics.js';
import type { JobRow } from '../../store/schema.js';
import type { JobHandler } from '../job.js';
import { Attempt } from './attempt.js';
import type { CancelResult } from './cancel.js';
import { cancelJob } from './cancel.js';
import { claimJobs, nextDue } from './claim.js';
import type { Enqueued, JobSpec } from './enqueue.js';
import { enqueueJob } from './enqueue.js';
import type { RunnerOptions } from './options.js';
import type { JobCensus, Rescue } from './reaper.js';
import { census, reapExpired } from './reaper.js';
import type { JobRunStatus, JobStatus } from './status.js';
import { readJobRuns, readJobStatus } from './status.js';

/** What a runner needs. */
export interface RunnerDeps {
  log: ChangeLog;
  realmId: number;
  options: RunnerOptions;
  metrics?: JobMetrics;
  logger?: Pick<Logger, 'info' | 'warn' | 'error'>;
}

/**
 * Runs jobs from the database: claims due jobs of the kinds registered with it (up to its
 * concurrency), runs each attempt under its lease, and runs the reaper. Several runners (in one
 * process or many, on one database) share the work; the job rows are the only state they share.
 */
export class JobRunner {
  private readonly handlers = new Map<string, JobHandler>();
  private readonly active = new Map<number, { attempt: Attempt; done: Promise<void> }>();
  private readonly timers: NodeJS.Timeout[] = [];
  private dueTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private started = false;
  private stopping = false;
  private pumping = false;
  private again = false;
  private reaping: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: RunnerDeps) {}

  get options(): RunnerOptions {
    return this.deps.options;
  }

  /** Runs jobs of `kind` with `handler` (from the next claim on). */
  register<P>(kind: string, handler: JobHandler<P>): void {
    this.handlers.set(kind, handler as JobHandler);
    if (this.started) this.wake();
  }

  /** Starts claiming (woken by every commit's doorbell and a slow poll) and reaping. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const { log, options } = this.deps;
    this.unsubscribe = log.doorbell.subscribe(() => this.wake());
    this.timers.push(setInterval(() => this.wake(), options.pollMs));
    this.timers.push(setInterval(() => void this.reap(), options.reaperMs));
    for (const t of this.timers) t.unref();
    this.wake();
  }

  /** Enqueues a job in a command of its own (use {@link enqueueJob} inside another command). */
  async enqueue(spec: JobSpec): Promise<Enqueued> {
    const { value } = await this.deps.log.run(this.deps.realmId, (ctx) =>
      enqueueJob(ctx, spec, this.deps.options),
    );
    return value;
  }

  /** Cancels a job; an attempt running here is aborted at once. */
  async cancel(jobId: number): Promise<CancelResult> {
    const result = await cancelJob(this.deps.log, this.deps.realmId, jobId, this.deps.options);
    if (result === 'requested') this.active.get(jobId)?.attempt.stop('canceled');
    return result;
  }

  /** A job's status derived from its row and lease now. */
  status(jobId: number): Promise<JobStatus | null> {
    return readJobStatus(this.deps.log.store.db, jobId, this.deps.options, this.deps.options.clock());
  }

  /** A job's attempts. */
  runs(jobId: number): Promise<JobRunStatus[]> {
    return readJobRuns(this.deps.log.store.db, jobId);
  }

  /** Jobs this runner is running now. */
  get running(): number[] {
    return [...this.active.keys()];
  }

  /**
   * One reaper round: rescues expired leases (logging each), then updates the census metrics.
   * Rounds never overlap within a runner; across runners the reaper's lock serialises them.
   */
  reap(): Promise<{ rescues: Rescue[]; census: JobCensus } | null> {
    const round = this.reaping.then(async () => {
      const { log, realmId, options, metrics, logger } = this.deps;
      try {
        const rescues = await reapExpired(log, realmId, options);
        for (const r of rescues) {
          metrics?.leaseExpiries.inc();
          metrics?.rescues.labels(r.to).inc();
          logger?.warn(
            { jobId: r.jobId, attempt: r.attempt, expiredForMs: r.expiredFor, to: r.to },
            'job lease expired; reaper moved the job on',
          );
        }
        const c = await census(log, realmId, options);
        if (metrics) {
          metrics.byState.reset();
          for (const [state, n] of Object.entries(c.byState)) metrics.byState.labels(state).set(n);
          metrics.oldestRunning.set(c.oldestRunningMs / 1000);
          metrics.unclaimed.set(c.unclaimed);
          metrics.leaseInvariantViolations.set(c.invariantViolations);
        }
        if (c.unclaimed > 0) logger?.warn({ unclaimed: c.unclaimed }, 'due jobs are not being claimed');
        if (rescues.length > 0) this.wake();
        return { rescues, census: c };
      } catch (err) {
        logger?.warn({ err }, 'job reaper round failed');
        return null;
      }
    });
    this.reaping = round;
    return round;
  }

  /**
   * Graceful shutdown: stops claiming, lets running attempts finish for up to `graceMs`, then
   * aborts the rest, which release their jobs to the queue without using up an attempt.
   */
  async stop(graceMs = 2000): Promise<void> {
    this.stopping = true;
    this.unsubscribe?.();
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.dueTimer);
    const all = () => Promise.all([...this.active.values()].map((a) => a.done));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all(), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    for (const { attempt } of this.active.values()) attempt.stop('shutdown');
    await all();
    await this.reaping;
  }

  private wake(): void {
    if (!this.started || this.stopping) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    void this.pump().finally(() => (this.pumping = false));
  }

  private async pump(): Promise<void> {
    const { log, realmId, options, logger } = this.deps;
    const kinds = [...this.handlers.keys()];
    try {
      do {
        this.again = false;
        while (!this.stopping && this.active.size < options.concurrency) {
          const due = await nextDue(log, realmId, kinds);
          if (due === null) break;
          const wait = due - options.clock();
          if (wait > 0) {
            clearTimeout(this.dueTimer);
            this.dueTimer = setTimeout(() => this.wake(), Math.min(wait, options.pollMs));
            this.dueTimer.unref();
            break;
          }
          const rows = await claimJobs(log, realmId, kinds, options.concurrency - this.active.size, options);
          if (rows.length === 0) break;
          for (const row of rows) this.launch(row);
        }
      } while (this.again && !this.stopping);
    } catch (err) {
      logger?.warn({ err }, 'claiming jobs failed; retrying at the next poll');
    }
  }

  private launch(row: JobRow): void {
    const attempt = new Attempt(this.deps, row);
    const handler = this.handlers.get(row.kind)!;
    const done = attempt.execute(handler).finally(() => {
      this.active.delete(row.id);
      this.wake();
    });
    this.active.set(row.id, { attempt, done });
  }
}
