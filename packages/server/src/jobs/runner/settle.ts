import { randomBytes } from 'node:crypto';
import type { RawBuilder } from 'kysely';
import { sql } from 'kysely';
import type { CommandContext } from '../../changelog/log.js';
import type { JobRow } from '../../store/schema.js';
import type { Lease } from '../job.js';
import { FencedOffError } from '../job.js';
import { holds } from './lease.js';
import type { RunnerOptions } from './options.js';
import { backoffDelay } from './options.js';
import { executePrepared } from './prepared.js';
import { recordJob } from './record.js';
import type { StatusBounds } from './status.js';

/** How an attempt ended, as its worker saw it. */
export type AttemptEnd =
  | { outcome: 'succeeded' }
  | { outcome: 'failed'; error: string }
  | { outcome: 'canceled' }
  /** The runner is shutting down: the job goes back to the queue without using up an attempt. */
  | { outcome: 'released' };

/** One attempt's end to record; the result is the job's row after it, or the rejection. */
export interface EndRequest {
  lease: Lease;
  end: AttemptEnd;
}
export type EndResult = JobRow | FencedOffError;

/** Jobs to claim: up to `limit` due jobs of these kinds. */
export interface ClaimRequest {
  kinds: readonly string[];
  limit: number;
}

export type SettleOptions = Pick<
  RunnerOptions,
  'clock' | 'reaperMs' | 'unclaimedAfterMs' | 'backoffMs' | 'maxBackoffMs' | 'leaseMs' | 'workerId'
>;

/** How a store runs {@link settle}: which SQL it can use. */
export interface SettleDialect {
  /** Rows are taken `FOR UPDATE SKIP LOCKED` (other runners skip them instead of waiting). */
  skipLocked: boolean;
  /**
   * Successes and the claim go to the database as one statement (data-modifying CTEs over arrays,
   * PostgreSQL): inside the write lock every round trip is time no other command can commit, and
   * with one statement the lock is held for a handful of round trips whatever the batch size.
   */
  oneStatement: boolean;
}

/**
 * Moves jobs on inside the caller's command: ends the attempts in `ends` under the fence (only an
 * attempt that still holds its lease can move its job on; a late one gets {@link FencedOffError}
 * and changes nothing), then claims up to `claim.limit` due jobs. Each claim increments the job's
 * attempt and issues a lease token with an expiry (the fence every later write checks) and the
 * attempt's hard deadline, and opens its `job_runs` row. Every transition is recorded as a change
 * (ends first, then claims). One result per end request, in order.
 */
export async function settle(
  ctx: CommandContext,
  dialect: SettleDialect,
  ends: readonly EndRequest[],
  claim: ClaimRequest | null,
  opts: SettleOptions,
): Promise<{ results: EndResult[]; claimed: JobRow[] }> {
  const now = opts.clock();
  const results: EndResult[] = [];
  const succeeded = [...ends.keys()].filter((i) => ends[i]!.end.outcome === 'succeeded');
  const limit = claim && claim.kinds.length > 0 ? Math.max(0, claim.limit) : 0;
  let claimed: JobRow[] = [];
  let after = new Map<number, JobRow>();
  if (succeeded.length > 0 || limit > 0) {
    const leases = succeeded.map((i) => ends[i]!.lease);
    // One token per claim batch: the fence is (job id, attempt, token), so jobs sharing a token
    // still cannot impersonate each other, and one UPDATE serves the batch.
    const token = randomBytes(16).toString('hex');
    const step = { now, leases, kinds: claim?.kinds ?? [], limit, token };
    ({ ended: after, claimed } = dialect.oneStatement
      ? await succeedAndClaimInOne(ctx, step, opts)
      : await succeedAndClaim(ctx, step, dialect.skipLocked, opts));
  }
  for (const i of succeeded) {
    const { lease } = ends[i]!;
    const row = after.get(lease.jobId);
    if (row && row.attempt === lease.attempt) {
      results[i] = row;
      recordJob(ctx, row, opts, now);
    } else {
      results[i] = new FencedOffError(lease.jobId, lease.attempt);
    }
  }
  const others = [...ends.keys()].filter((i) => ends[i]!.end.outcome !== 'succeeded');
  if (others.length > 0) {
    const ids = [...new Set(others.map((i) => ends[i]!.lease.jobId))];
    const rows = await ctx.trx.selectFrom('jobs').selectAll().where('id', 'in', ids).execute();
    const byId = new Map(rows.map((r) => [r.id, r]));
    for (const i of others) {
      const { lease, end } = ends[i]!;
      const row = byId.get(lease.jobId);
      results[i] = holds(row, lease, now, 'transition')
        ? await endOne(ctx, row!, end as Exclude<AttemptEnd, { outcome: 'succeeded' }>, now, opts)
        : new FencedOffError(lease.jobId, lease.attempt);
      if (!(results[i] instanceof FencedOffError)) byId.set(lease.jobId, results[i] as JobRow);
    }
  }
  for (const row of claimed) recordJob(ctx, row, opts, now);
  return { results, claimed };
}

interface Step {
  now: number;
  leases: Lease[];
  kinds: readonly string[];
  limit: number;
  token: string;
}

/**
 * PostgreSQL: the successes (each row checked against its fence, its run closed) and the claim
 * (rows picked `FOR UPDATE SKIP LOCKED`, updated, their runs opened) as one statement. Its parts
 * cannot touch the same row: a success ends a `running` row, a claim takes a `queued` or
 * `retrying` one, and all of them read the statement's one snapshot.
 */
async function succeedAndClaimInOne(
  ctx: CommandContext,
  { now, leases, kinds, limit, token }: Step,
  opts: SettleOptions,
): Promise<{ ended: Map<number, JobRow>; claimed: JobRow[] }> {
  const query = sql<JobRow & { step: 'ended' | 'claimed' }>`
    WITH ended AS (
      UPDATE jobs AS j
      SET state = 'succeeded', finished_at = ${now}::int8, error = NULL, lease_token = NULL,
        lease_expires_at = NULL, deadline_at = NULL, updated_at = ${now}::int8
      FROM unnest(${leases.map((l) => l.jobId)}::int4[], ${leases.map((l) => l.attempt)}::int4[],
        ${leases.map((l) => l.token)}::text[]) AS l (id, attempt, token)
      WHERE j.id = l.id AND j.attempt = l.attempt AND j.lease_token = l.token
        AND j.state = 'running' AND j.lease_expires_at > ${now}::int8
      RETURNING ${jobColumns('j')}
    ), ended_runs AS (
      UPDATE job_runs AS r SET outcome = 'succeeded', finished_at = ${now}::int8
      FROM ended WHERE r.job_id = ended.id AND r.attempt = ended.attempt
    ), picked AS (
      SELECT id FROM jobs
      WHERE realm_id = ${ctx.realmId}::int4 AND state IN ('queued', 'retrying')
        AND run_after <= ${now}::int8 AND kind = ANY(${[...kinds]}::text[])
      ORDER BY run_after, id
      LIMIT ${limit}::int8
      FOR UPDATE SKIP LOCKED
    ), claimed AS (
      UPDATE jobs AS j
      SET state = 'running', attempt = j.attempt + 1, lease_token = ${token}, claimed_at = ${now}::int8,
        deadline_at = j.deadline_ms + ${now}::int8, lease_expires_at = ${now + opts.leaseMs}::int8,
        started_at = coalesce(j.started_at, ${now}::int8), retry_reason = NULL, updated_at = ${now}::int8
      FROM picked WHERE j.id = picked.id
      RETURNING ${jobColumns('j')}
    ), opened AS (
      INSERT INTO job_runs (job_id, attempt, worker, outcome, row_errors, counts, started_at)
      SELECT id, attempt, ${opts.workerId}, 'running', '[]', counts, ${now}::int8 FROM claimed
    )
    SELECT 'ended' AS step, ${jobColumns('ended')} FROM ended
    UNION ALL
    SELECT 'claimed' AS step, ${jobColumns('claimed')} FROM claimed`;
  const { rows } = await executePrepared(ctx.trx, 'concord_jobs_settle_1', query);
  const ended = new Map<number, JobRow>();
  const claimed: JobRow[] = [];
  for (const { step, ...row } of rows) {
    if (step === 'ended') ended.set(row.id, row);
    else claimed.push(row);
  }
  // The database returns claimed rows in no particular order; launch them in due order.
  claimed.sort((a, b) => Number(a.run_after) - Number(b.run_after) || a.id - b.id);
  return { ended, claimed };
}

/**
 * The predicate of the `jobs_claimable` partial index, written as it is there: with the states as
 * bound parameters SQLite does not see that the index applies and scans and sorts every job.
 */
export const waiting = sql<boolean>`state IN ('queued', 'retrying')`;

/** Every column of a job row, in a fixed order (a prepared statement names what it returns). */
const JOB_COLUMNS = [
  'id',
  'realm_id',
  'kind',
  'payload',
  'state',
  'attempt',
  'max_attempts',
  'lease_token',
  'lease_expires_at',
  'claimed_at',
  'run_after',
  'deadline_ms',
  'deadline_at',
  'cancel_requested',
  'progress_done',
  'progress_total',
  'counts',
  'error',
  'retry_reason',
  'singleton_key',
  'created_at',
  'started_at',
  'finished_at',
  'updated_at',
] as const satisfies readonly (keyof JobRow)[];
// A column added to JobRow but not to the list fails to compile here.
const everyColumn: Exclude<keyof JobRow, (typeof JOB_COLUMNS)[number]> extends never ? true : never = true;
void everyColumn;

function jobColumns(table: string): RawBuilder<unknown> {
  return sql.raw(JOB_COLUMNS.map((c) => `${table}.${c}`).join(', '));
}

/** Any store: {@link succeedAndClaimInOne} as four statements. */
async function succeedAndClaim(
  ctx: CommandContext,
  { now, leases, kinds, limit, token }: Step,
  skipLocked: boolean,
  opts: SettleOptions,
): Promise<{ ended: Map<number, JobRow>; claimed: JobRow[] }> {
  const ended = new Map<number, JobRow>();
  if (leases.length > 0) {
    // One conditional UPDATE checks every success's fence: the rows it returns still held their
    // lease; any request whose row it did not return was fenced off.
    const updated = await ctx.trx
      .updateTable('jobs')
      .set({
        state: 'succeeded',
        finished_at: now,
        error: null,
        lease_token: null,
        lease_expires_at: null,
        deadline_at: null,
        updated_at: now,
      })
      .where('state', '=', 'running')
      .where('lease_expires_at', '>', now)
      .where((eb) =>
        eb.or(
          leases.map((l) =>
            eb.and([eb('id', '=', l.jobId), eb('attempt', '=', l.attempt), eb('lease_token', '=', l.token)]),
          ),
        ),
      )
      .returningAll()
      .execute();
    for (const row of updated) ended.set(row.id, row);
    if (updated.length > 0)
      // A job has one open run at a time (the reaper closes an expired one before a new claim).
      await ctx.trx
        .updateTable('job_runs')
        .set({ outcome: 'succeeded', finished_at: now })
        .where('job_id', 'in', [...ended.keys()])
        .where('outcome', '=', 'running')
        .execute();
  }
  if (limit === 0) return { ended, claimed: [] };
  let candidates = ctx.trx
    .selectFrom('jobs')
    .select('id')
    .where('realm_id', '=', ctx.realmId)
    .where(waiting)
    .where('run_after', '<=', now)
    .where('kind', 'in', [...kinds])
    .orderBy('run_after')
    .orderBy('id')
    .limit(limit);
  if (skipLocked) candidates = candidates.forUpdate().skipLocked();
  const claimed = await ctx.trx
    .updateTable('jobs')
    .set((eb) => ({
      state: 'running',
      attempt: eb('attempt', '+', 1),
      lease_token: token,
      claimed_at: now,
      deadline_at: eb('deadline_ms', '+', now),
      lease_expires_at: now + opts.leaseMs,
      started_at: eb.fn.coalesce('started_at', eb.val(now)),
      retry_reason: null,
      updated_at: now,
    }))
    // Picked and claimed in one statement (one round trip fewer per batch).
    .where('id', 'in', candidates)
    .returningAll()
    .execute();
  if (claimed.length > 0)
    await ctx.trx
      .insertInto('job_runs')
      .values(
        claimed.map((row) => ({
          job_id: row.id,
          attempt: row.attempt,
          worker: opts.workerId,
          outcome: 'running',
          row_errors: '[]',
          counts: row.counts,
          started_at: now,
        })),
      )
      .execute();
  claimed.sort((a, b) => Number(a.run_after) - Number(b.run_after) || a.id - b.id);
  return { ended, claimed };
}

/**
 * Ends one attempt other than by success: a failure retries with exponential backoff until the
 * last attempt, which fails the job; a cancel request that arrived meanwhile ends the job canceled.
 */
async function endOne(
  ctx: CommandContext,
  row: JobRow,
  end: Exclude<AttemptEnd, { outcome: 'succeeded' }>,
  now: number,
  opts: SettleOptions,
): Promise<JobRow> {
  let next: Partial<JobRow>;
  let runOutcome: string = end.outcome;
  let error: string | null = null;
  if (row.cancel_requested === 1 || end.outcome === 'canceled') {
    next = { state: 'canceled', finished_at: now, error: null };
    runOutcome = 'canceled';
  } else if (end.outcome === 'released') {
    next = {
      state: 'retrying',
      run_after: now,
      max_attempts: row.max_attempts + 1,
      retry_reason: `attempt ${row.attempt} released: its runner shut down`,
    };
  } else {
    error = end.error;
    next =
      row.attempt >= row.max_attempts
        ? {
            state: 'failed',
            finished_at: now,
            error: `attempt ${row.attempt} of ${row.max_attempts}: ${end.error}`,
          }
        : {
            state: 'retrying',
            run_after: now + backoffDelay(opts, row.attempt),
            retry_reason: `attempt ${row.attempt} failed: ${end.error}`,
          };
  }
  return closeAttempt(ctx, row, next, { outcome: runOutcome, error }, now, opts);
}

/**
 * Moves a job whose running attempt is over to `next` (its lease cleared), closes the attempt's
 * run record with `run`, and records the transition: how the runner ends a failed, released or
 * canceled attempt, and how the reaper ends an expired one.
 */
export async function closeAttempt(
  ctx: CommandContext,
  row: JobRow,
  next: Partial<JobRow>,
  run: { outcome: string; error: string | null },
  now: number,
  bounds: StatusBounds,
): Promise<JobRow> {
  const updated = await ctx.trx
    .updateTable('jobs')
    .set({ ...next, lease_token: null, lease_expires_at: null, deadline_at: null, updated_at: now })
    .where('id', '=', row.id)
    .returningAll()
    .executeTakeFirstOrThrow();
  await ctx.trx
    .updateTable('job_runs')
    .set({ outcome: run.outcome, error: run.error, finished_at: now, counts: row.counts })
    .where('job_id', '=', row.id)
    .where('attempt', '=', row.attempt)
    .execute();
  recordJob(ctx, updated, bounds, now);
  return updated;
}
