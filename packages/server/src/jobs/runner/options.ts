/** How a runner leases, retries and reports; built from the config (`CONCORD_JOB_*`) by {@link runnerOptions}. */
export interface RunnerOptions {
  /** This runner's name in `job_runs.worker` and in logs (the node id). */
  workerId: string;
  /** A claim's lease; a heartbeat every third of it renews it. */
  leaseMs: number;
  /** How often the reaper looks for expired leases. */
  reaperMs: number;
  /** Attempts this runner runs at once. */
  concurrency: number;
  /** Attempts a job gets unless its enqueue says otherwise. */
  maxAttempts: number;
  /** The hard bound on one attempt unless its enqueue says otherwise. */
  deadlineMs: number;
  /** The second retry's delay (the first is immediate); each further retry doubles it, up to {@link maxBackoffMs}. */
  backoffMs: number;
  maxBackoffMs: number;
  /** A due job that no runner claimed for this long is reported as unclaimed. */
  unclaimedAfterMs: number;
  /** How often an idle runner looks for due jobs even without a doorbell. */
  pollMs: number;
  /** The clock every lease decision uses (tests drive their own). */
  clock: () => number;
  /**
   * Finished jobs older than this are deleted with their runs (the newest finished job of each
   * singleton key is kept); default 7 days.
   */
  retentionMs?: number;
  /** How often the retention sweep runs; default a minute. */
  retentionSweepMs?: number;
  /** Jobs deleted per transaction of the sweep; default 500. */
  retentionBatch?: number;
}

/** The retention defaults a runner built without {@link runnerOptions} gets. */
export const retentionDefaults = {
  retentionMs: 7 * 86_400_000,
  retentionSweepMs: 60_000,
  // A batch of 500 jobs and their runs: see test/jobs/retention.contract.test.ts for its time.
  retentionBatch: 500,
} as const satisfies Partial<RunnerOptions>;

/** The job keys of the config, in seconds as operators write them. */
export interface JobConfig {
  nodeId: string;
  jobLeaseSeconds: number;
  jobReaperSeconds: number;
  jobConcurrency: number;
  jobMaxAttempts: number;
  jobDeadlineSeconds: number;
  /** Default 7 days (see {@link retentionDefaults}). */
  jobRetentionSeconds?: number;
}

/**
 * Runner options from the config. Backoff grows from one lease: a job that keeps failing is not
 * hammered by the next worker before an operator could notice, yet retries within seconds.
 */
export function runnerOptions(config: JobConfig, overrides: Partial<RunnerOptions> = {}): RunnerOptions {
  const leaseMs = Math.round(config.jobLeaseSeconds * 1000);
  const reaperMs = Math.round(config.jobReaperSeconds * 1000);
  return {
    workerId: config.nodeId,
    leaseMs,
    reaperMs,
    concurrency: config.jobConcurrency,
    maxAttempts: config.jobMaxAttempts,
    deadlineMs: Math.round(config.jobDeadlineSeconds * 1000),
    backoffMs: leaseMs,
    maxBackoffMs: 10 * 60_000,
    unclaimedAfterMs: Math.max(60_000, 4 * (leaseMs + reaperMs)),
    pollMs: Math.min(1000, reaperMs),
    clock: Date.now,
    ...retentionDefaults,
    ...(config.jobRetentionSeconds === undefined
      ? {}
      : { retentionMs: Math.round(config.jobRetentionSeconds * 1000) }),
    ...overrides,
  };
}

/**
 * The delay before retry number `attempt` (1 = after the first attempt). The first retry is
 * immediate — a lost worker, the most common cause, says nothing about the job — so a job whose
 * worker died runs again within lease + reaper interval; from the second on, retries back off
 * exponentially from {@link RunnerOptions.backoffMs}.
 */
export function backoffDelay(
  opts: Pick<RunnerOptions, 'backoffMs' | 'maxBackoffMs'>,
  attempt: number,
): number {
  if (attempt <= 1) return 0;
  return Math.min(opts.maxBackoffMs, opts.backoffMs * 2 ** (attempt - 2));
}
