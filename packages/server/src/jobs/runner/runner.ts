import type { Logger } from 'pino';
import type { ChangeLog } from '../../changelog/log.js';
import type { JobMetrics } from '../../observability/metrics.js';
import type { JobRow } from '../../store/schema.js';
import type { JobHandler } from '../job.js';
import { Attempt } from './attempt.js';
import type { CancelResult } from './cancel.js';
import { cancelJob } from './cancel.js';
import { claimJobs, nextDue, settleDialect } from './claim.js';
import type { Enqueued, JobSpec } from './enqueue.js';
import { enqueueJob } from './enqueue.js';
import type { RunnerOptions } from './options.js';
import { retentionDefaults } from './options.js';
import type { JobCensus, Rescue } from './reaper.js';
import { census, reapExpired } from './reaper.js';
import type { Sweep } from './retention.js';
import { sweepFinishedJobs } from './retention.js';
import type { JobRunStatus, JobStatus } from './status.js';
import { readJobRuns, readJobStatus } from './status.js';
import type { AttemptEnd, EndResult, SettleDialect } from './settle.js';
import { settle } from './settle.js';
import type { Lease } from '../job.js';

/** An attempt's end waiting for the next settle command. */
interface QueuedEnd {
  lease: Lease;
  end: AttemptEnd;
  done: (r: EndResult | Error) => void;
}

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
  private pumping: Promise<void> | null = null;
  private again = false;
  private reaping: Promise<unknown> = Promise.resolve();
  private sweeping: Promise<unknown> = Promise.resolve();
  private readonly dialect: SettleDialect;
  /**
   * Slot accounting (up to `concurrency`): attempts whose handler is running, ends waiting for a
   * settle command, and slots promised to claims in flight. A settle command's ends free their
   * slots in the transaction that claims for them, so a command may claim for its own ends.
   */
  private busy = 0;
  private ends: QueuedEnd[] = [];
  private reserved = 0;
  /** The settle commands recording waiting ends, while they run. */
  private settling: Promise<void> | null = null;

  constructor(private readonly deps: RunnerDeps) {
    this.dialect = settleDialect(deps.log.store);
  }

  get options(): RunnerOptions {
    return this.deps.options;
  }

  /** Runs jobs of `kind` with `handler` (from the next claim on). */
  register<P>(kind: string, handler: JobHandler<P>): void {
    this.handlers.set(kind, handler as JobHandler);
    if (this.started) this.wake();
  }

  /** Starts claiming (woken by every commit's doorbell and a slow poll), reaping and the retention sweep. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const { log, options } = this.deps;
    this.unsubscribe = log.doorbell.subscribe(() => this.wake());
    this.timers.push(setInterval(() => this.wake(), options.pollMs));
    this.timers.push(setInterval(() => void this.reap(), options.reaperMs));
    // Beside the reaper, not in its rounds: a long sweep must never delay a rescue.
    const sweepMs = options.retentionSweepMs ?? retentionDefaults.retentionSweepMs;
    this.timers.push(setInterval(() => void this.sweep(), sweepMs));
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
   * One reaper round: takes the census (metrics, the lease invariant), then rescues expired leases
   * (logging each).
   * Rounds never overlap within a runner; across runners the reaper's lock serialises them.
   */
  reap(): Promise<{ rescues: Rescue[]; census: JobCensus } | null> {
    const round = this.reaping.then(async () => {
      const { log, realmId, options, metrics, logger } = this.deps;
      try {
        // The census first: what it finds expired for longer than lease + reaper interval is what
        // every reaper of the cluster failed to rescue in time, not what this round is about to.
        const c = await census(log, realmId, options);
        const rescues = await reapExpired(log, realmId, options);
        for (const r of rescues) {
          metrics?.leaseExpiries.inc();
          metrics?.rescues.labels(r.to).inc();
          logger?.warn(
            { jobId: r.jobId, attempt: r.attempt, expiredForMs: r.expiredFor, to: r.to },
            'job lease expired; reaper moved the job on',
          );
        }
        if (metrics) {
          metrics.byState.reset();
          for (const [state, n] of Object.entries(c.byState)) metrics.byState.labels(state).set(n);
          metrics.oldestRunning.set(c.oldestRunningMs / 1000);
          metrics.unclaimed.set(c.unclaimed);
          metrics.leaseInvariantViolations.set(c.invariantViolations);
        }
        if (c.unclaimed > 0) logger?.warn({ unclaimed: c.unclaimed }, 'due jobs are not being claimed');
        if (c.invariantViolations > 0)
          logger?.error(
            { jobs: c.invariantViolations },
            'jobs held leases expired for longer than lease + reaper interval (no reaper ran in time)',
          );
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
   * One retention sweep: deletes finished jobs older than the retention (see
   * {@link sweepFinishedJobs}) and logs what it deleted. Sweeps never overlap within a runner;
   * across runners the sweep's lock lets one node do each round.
   */
  sweep(): Promise<Sweep | null> {
    const round = this.sweeping.then(async () => {
      const { log, realmId, options, logger } = this.deps;
      try {
        const swept = await sweepFinishedJobs(log.store, realmId, {
          clock: options.clock,
          retentionMs: options.retentionMs ?? retentionDefaults.retentionMs,
          retentionBatch: options.retentionBatch ?? retentionDefaults.retentionBatch,
        });
        if (swept.jobs > 0)
          logger?.info(
            { jobs: swept.jobs, runs: swept.runs, batches: swept.batches },
            'job retention: deleted finished jobs',
          );
        return swept;
      } catch (err) {
        logger?.warn({ err }, 'job retention sweep failed');
        return null;
      }
    });
    this.sweeping = round;
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
    // A claim in flight may still launch attempts; they are released at once (see launch).
    await this.pumping;
    await this.settling;
    const all = () => Promise.all([...this.active.values()].map((a) => a.done));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all(), new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    for (const { attempt } of this.active.values()) attempt.stop('shutdown');
    while (this.active.size > 0) await all();
    await this.settling;
    await this.reaping;
    await this.sweeping;
  }

  private wake(): void {
    if (!this.started || this.stopping) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = this.pump().finally(() => (this.pumping = null));
  }

  private async pump(): Promise<void> {
    const { log, realmId, options, logger } = this.deps;
    const kinds = [...this.handlers.keys()];
    try {
      do {
        this.again = false;
        // While ends are being recorded, their settle commands claim for the slots they free.
        while (!this.stopping && !this.settling && this.free() > 0) {
          const due = await nextDue(log, realmId, kinds);
          if (due === null) break;
          const wait = due - options.clock();
          if (wait > 0) {
            clearTimeout(this.dueTimer);
            this.dueTimer = setTimeout(() => this.wake(), Math.min(wait, options.pollMs));
            this.dueTimer.unref();
            break;
          }
          const free = this.free();
          if (free <= 0) break;
          this.reserved += free;
          let rows: JobRow[];
          try {
            rows = await claimJobs(log, realmId, kinds, free, options);
          } finally {
            this.reserved -= free;
          }
          if (rows.length === 0) break;
          for (const row of rows) this.launch(row);
        }
      } while (this.again && !this.stopping);
    } catch (err) {
      logger?.warn({ err }, 'claiming jobs failed; retrying at the next poll');
    }
  }

  /** Slots neither running a handler, nor waiting for an end to be recorded, nor promised to a claim. */
  private free(): number {
    return this.deps.options.concurrency - this.busy - this.ends.length - this.reserved;
  }

  /**
   * Queues an attempt's end for a settle command: one command records every end that is waiting
   * and, in the same transaction, claims jobs for the slots they free — one WAL flush for a batch
   * of ends and claims instead of two per job.
   */
  private finish(lease: Lease, end: AttemptEnd): Promise<JobRow> {
    return new Promise<JobRow>((resolve, reject) => {
      this.ends.push({ lease, end, done: (r) => (r instanceof Error ? reject(r) : resolve(r)) });
      this.scheduleSettle();
    });
  }

  private scheduleSettle(): void {
    this.settling ??= this.settleAll().finally(() => {
      this.settling = null;
      // An end queued after the last batch was taken, while this one was finishing.
      if (this.ends.length > 0) this.scheduleSettle();
      this.wake();
    });
  }

  /**
   * Records the waiting ends, one settle command at a time. (Two in flight, the second waiting on
   * the write lock while the first commits, measured slower: each command took half the ends, and
   * a command's fixed cost — its round trips, its WAL flush — is most of its cost.)
   */
  private async settleAll(): Promise<void> {
    while (this.ends.length > 0) {
      // Let the attempts that finish in the same turn join the batch.
      await new Promise((resolve) => setImmediate(resolve));
      await this.settleBatch(this.ends.splice(0));
    }
  }

  private async settleBatch(batch: QueuedEnd[]): Promise<void> {
    const { log, realmId, options } = this.deps;
    // The batch's own ends are no longer counted as waiting, so `free` includes their slots.
    const free = this.stopping ? 0 : Math.max(0, this.free());
    this.reserved += free;
    try {
      const { value } = await log.run(realmId, (ctx) =>
        settle(ctx, this.dialect, batch, { kinds: [...this.handlers.keys()], limit: free }, options),
      );
      this.reserved -= free;
      for (const row of value.claimed) this.launch(row);
      for (const [i, b] of batch.entries()) b.done(value.results[i]!);
    } catch (err) {
      this.reserved -= free;
      for (const b of batch) b.done(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private launch(row: JobRow): void {
    // The slot is busy until the attempt's end is queued (or, if it has none to record, it ends).
    let queued = false;
    const finish = (lease: Lease, end: AttemptEnd) => {
      queued = true;
      this.busy--;
      return this.finish(lease, end);
    };
    this.busy++;
    const attempt = new Attempt({ ...this.deps, finish }, row);
    // Claimed while the runner was stopping: give it straight back.
    if (this.stopping) attempt.stop('shutdown');
    const handler = this.handlers.get(row.kind)!;
    const done = attempt.execute(handler).finally(() => {
      if (!queued) this.busy--;
      this.active.delete(row.id);
      this.wake();
    });
    this.active.set(row.id, { attempt, done });
  }
}
