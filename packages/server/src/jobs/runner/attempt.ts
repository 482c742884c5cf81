import type { Logger } from 'pino';
import type { ChangeLog, CommandContext, Committed } from '../../changelog/log.js';
import type { JobMetrics } from '../../observability/metrics.js';
import type { JobRow } from '../../store/schema.js';
import type { JobCounts, JobHandler, JobRun, Lease, RowError } from '../job.js';
import { FencedOffError } from '../job.js';
import { assertHeld, heartbeat } from './lease.js';
import type { RunnerOptions } from './options.js';
import { recordJob } from './record.js';
import type { AttemptEnd } from './transitions.js';
import { endAttempt } from './transitions.js';

/** Why an attempt's signal was aborted. */
export type StopReason = 'lease-lost' | 'canceled' | 'deadline' | 'shutdown';

/** Row errors kept per run; beyond this only the count in `skipped` grows. */
const MAX_ROW_ERRORS = 1000;

/**
 * Runs a fenced callback on SQLite, refusing it (the command rolls back) if it waited for anything
 * but its own statements. SQLite's statements are synchronous, so a callback that only writes
 * never lets the event loop turn; one that awaits a timer or the network holds the database's one
 * write lock meanwhile — every writer of every process waits, and this process's only connection
 * with it — and a process stopped (SIGSTOP) then holds it until it runs again or dies: nothing can
 * take it away. Refused, such a callback fails in the first test run on SQLite, not in production.
 */
async function onlyStatements<T>(jobId: number, fn: () => Promise<T>): Promise<T> {
  let turned = false;
  const probe = setImmediate(() => (turned = true));
  try {
    const value = await fn();
    if (turned)
      throw new Error(
        `job ${jobId}: a fenced write awaited something other than its statements (a timer, a ` +
          `network call) while it held SQLite's write lock; do that work before or after run.fenced()`,
      );
    return value;
  } finally {
    clearImmediate(probe);
  }
}

/** What an attempt needs from its runner. */
export interface AttemptDeps {
  log: ChangeLog;
  realmId: number;
  options: RunnerOptions;
  metrics?: JobMetrics;
  logger?: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** Records the attempt's end (the runner batches them); default: one command per end. */
  finish?: (lease: Lease, end: AttemptEnd) => Promise<unknown>;
}

/**
 * One attempt of one claimed job: the {@link JobRun} its handler sees, its heartbeat, its hard
 * deadline, and the transition that ends it. Every write goes through {@link Attempt.fenced}.
 */
export class Attempt<P = unknown> implements JobRun<P> {
  readonly jobId: number;
  readonly kind: string;
  readonly payload: P;
  readonly attempt: number;
  readonly lease: Lease;
  private readonly controller = new AbortController();
  private stopReason: StopReason | null = null;
  private readonly deadlineAt: number;
  private readonly deadlineMs: number;

  constructor(
    private readonly deps: AttemptDeps,
    row: JobRow,
  ) {
    this.jobId = row.id;
    this.kind = row.kind;
    this.payload = JSON.parse(row.payload) as P;
    this.attempt = row.attempt;
    this.lease = {
      jobId: row.id,
      attempt: row.attempt,
      token: row.lease_token!,
      expiresAt: Number(row.lease_expires_at),
    };
    this.deadlineAt = Number(row.deadline_at);
    this.deadlineMs = Number(row.deadline_ms);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Aborts the attempt's signal; the first reason wins. */
  stop(reason: StopReason): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.controller.abort(new Error(`job ${this.jobId} attempt ${this.attempt} stopped: ${reason}`));
  }

  async fenced<T>(fn: (ctx: CommandContext) => Promise<T>): Promise<Committed<T>> {
    const { log, realmId, options } = this.deps;
    try {
      const committed = await log.run(realmId, async (ctx) => {
        await assertHeld(ctx.trx, this.lease, options.clock());
        return log.store.dialect === 'sqlite' ? onlyStatements(this.jobId, () => fn(ctx)) : fn(ctx);
      });
      // A turn of the event loop between a job's commands: on SQLite every statement is synchronous,
      // and without it the node's HTTP answers (long-polls carrying this job's events) would wait
      // for the whole job.
      await new Promise<void>((resolve) => setImmediate(resolve));
      return committed;
    } catch (err) {
      if (err instanceof FencedOffError) {
        this.deps.metrics?.fencedOff.inc();
        this.stop('lease-lost');
      }
      throw err;
    }
  }

  async progress(done: number, total: number | null, counts?: Partial<JobCounts>): Promise<void> {
    await this.fenced(async (ctx) => {
      const row = await assertHeld(ctx.trx, this.lease, this.deps.options.clock());
      const merged = JSON.stringify({ ...(JSON.parse(row.counts) as JobCounts), ...counts });
      const updated = await ctx.trx
        .updateTable('jobs')
        .set({ progress_done: done, progress_total: total, counts: merged, updated_at: ctx.now })
        .where('id', '=', row.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      await ctx.trx
        .updateTable('job_runs')
        .set({ counts: merged })
        .where('job_id', '=', row.id)
        .where('attempt', '=', row.attempt)
        .execute();
      recordJob(ctx, updated, this.deps.options, ctx.now);
    });
  }

  async rowErrors(errors: RowError[]): Promise<void> {
    if (errors.length === 0) return;
    await this.fenced(async (ctx) => {
      const run = await ctx.trx
        .selectFrom('job_runs')
        .select('row_errors')
        .where('job_id', '=', this.jobId)
        .where('attempt', '=', this.attempt)
        .executeTakeFirstOrThrow();
      const all = [...(JSON.parse(run.row_errors) as RowError[]), ...errors].slice(0, MAX_ROW_ERRORS);
      await ctx.trx
        .updateTable('job_runs')
        .set({ row_errors: JSON.stringify(all) })
        .where('job_id', '=', this.jobId)
        .where('attempt', '=', this.attempt)
        .execute();
    });
  }

  /** Runs the handler to its end and moves the job on; never throws. */
  async execute(handler: JobHandler<P>): Promise<void> {
    const { options, logger } = this.deps;
    const beat = setInterval(() => void this.beat(), Math.max(10, Math.floor(options.leaseMs / 3)));
    const deadline = setTimeout(() => this.stop('deadline'), Math.max(0, this.deadlineAt - options.clock()));
    let end: AttemptEnd | null;
    try {
      await handler(this);
      end = this.stopReason ? this.endFor(this.stopReason, null) : { outcome: 'succeeded' };
    } catch (err) {
      if (err instanceof FencedOffError) this.stop('lease-lost');
      end = this.endFor(this.stopReason, err);
    } finally {
      clearInterval(beat);
      clearTimeout(deadline);
    }
    if (!end) {
      logger?.info({ jobId: this.jobId, attempt: this.attempt }, 'job attempt lost its lease; stopped');
      return;
    }
    try {
      if (this.deps.finish) await this.deps.finish(this.lease, end);
      else await endAttempt(this.deps.log, this.deps.realmId, this.lease, end, options);
    } catch (err) {
      if (err instanceof FencedOffError) {
        this.deps.metrics?.fencedOff.inc();
        logger?.info(
          { jobId: this.jobId, attempt: this.attempt },
          'job attempt ended after losing its lease',
        );
      } else {
        // The lease will expire and the reaper will move the job on.
        logger?.warn({ err, jobId: this.jobId }, 'could not record the end of a job attempt');
      }
    }
  }

  /** How an attempt stopped for `reason` ends (null: it is no longer ours to end). */
  private endFor(reason: StopReason | null, err: unknown): AttemptEnd | null {
    switch (reason) {
      case 'lease-lost':
        return null;
      case 'shutdown':
        return { outcome: 'released' };
      case 'canceled':
        return { outcome: 'canceled' };
      case 'deadline':
        return { outcome: 'failed', error: `deadline of ${this.deadlineMs / 1000} s exceeded` };
      default:
        return { outcome: 'failed', error: err instanceof Error ? err.message : String(err) };
    }
  }

  private async beat(): Promise<void> {
    if (this.stopReason === 'lease-lost') return;
    const { log, options, logger } = this.deps;
    try {
      const result = await heartbeat(
        log.store.db,
        this.lease,
        this.deadlineAt,
        options.leaseMs,
        options.clock(),
      );
      if (!result.held) return this.stop('lease-lost');
      this.lease.expiresAt = result.expiresAt;
      if (result.cancelRequested) this.stop('canceled');
    } catch (err) {
      // A missed beat is not fatal: the lease may still be renewed by the next one.
      logger?.warn({ err, jobId: this.jobId }, 'job heartbeat failed');
    }
  }
}
