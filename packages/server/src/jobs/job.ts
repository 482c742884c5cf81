import type { Committed, CommandContext } from '../changelog/log.js';

/**
 * The contract between the job runner (`jobs/runner/`) and the work it runs (directory syncs in
 * `jobs/directory/`, no-op jobs in benchmarks). A job's row is the single source of truth for its
 * state; everything here is derived from it.
 */

/** Every state a job row can be in. `retrying` is queued again after a failed or expired attempt. */
export type JobState = 'queued' | 'running' | 'retrying' | 'succeeded' | 'failed' | 'canceled';

/** The fence a claim issues: a write is accepted only while the row still carries all three. */
export interface Lease {
  jobId: number;
  attempt: number;
  token: string;
  /** Epoch ms after which the lease is void unless renewed by a heartbeat. */
  expiresAt: number;
}

/** Counts a directory sync reports; other kinds leave them at zero. */
export interface JobCounts {
  created: number;
  updated: number;
  deactivated: number;
  subscribed: number;
  unsubscribed: number;
  /** Rows the source gave that could not be applied (each with a per-row error in the run). */
  skipped: number;
}

/** A per-row problem a run reports without failing (a malformed CSV line, an LDAP entry without a name). */
export interface RowError {
  row: string;
  message: string;
}

/** What a handler gets for one attempt of one job. */
export interface JobRun<P = unknown> {
  readonly jobId: number;
  readonly kind: string;
  readonly payload: P;
  readonly attempt: number;
  readonly lease: Readonly<Lease>;
  /** Aborted when the lease is lost, the job is canceled, the hard deadline passes or the runner stops. */
  readonly signal: AbortSignal;
  /**
   * Runs one command under the fence: in its write transaction the job row is checked to still be
   * `running` with this attempt and lease token (and the lease unexpired) before `fn` runs; if not,
   * nothing is written and {@link FencedOffError} is thrown (and counted). Every data write a job
   * makes goes through here, so a worker that lost its lease cannot change anything.
   */
  fenced<T>(fn: (ctx: CommandContext) => Promise<T>): Promise<Committed<T>>;
  /** Records progress (done / total) and counts on the job row, under the fence. */
  progress(done: number, total: number | null, counts?: Partial<JobCounts>): Promise<void>;
  /** Records per-row errors on the run, under the fence. */
  rowErrors(errors: RowError[]): Promise<void>;
}

/** The work for one kind of job. Throwing fails the attempt (retried with backoff until the last). */
export type JobHandler<P = unknown> = (run: JobRun<P>) => Promise<void>;

/** Thrown by a fenced write whose lease is no longer the row's; the handler must stop. */
export class FencedOffError extends Error {
  constructor(
    readonly jobId: number,
    readonly attempt: number,
  ) {
    super(`job ${jobId} attempt ${attempt} no longer holds its lease; write rejected`);
    this.name = 'FencedOffError';
  }
}
