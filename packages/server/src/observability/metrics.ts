import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { HotHistogram } from './hotHistogram.js';

/** The server's Prometheus metrics, on a registry of its own (several servers may share a process in tests). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'concord_process_' });
  return {
    registry,
    changelogHead: new Gauge({
      name: 'concord_changelog_head_seq',
      help: 'Newest committed change-log seq seen by this node.',
      registers: [registry],
    }),
    consumerCursor: new Gauge({
      name: 'concord_changelog_consumer_cursor',
      help: 'Last change-log seq applied by each consumer.',
      labelNames: ['consumer'],
      registers: [registry],
    }),
    consumerLag: new Gauge({
      name: 'concord_changelog_consumer_lag',
      help: 'Change-log entries committed but not yet applied, per consumer (head - cursor).',
      labelNames: ['consumer'],
      registers: [registry],
    }),
    changesPruned: new Counter({
      name: 'concord_changelog_pruned_total',
      help: 'Change-log entries removed by retention.',
      registers: [registry],
    }),
    // Observed on every request: a histogram whose children are plain numbers.
    httpRequests: new HotHistogram({
      name: 'concord_http_request_duration_seconds',
      help: 'HTTP request duration by route and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
    registerSnapshots: new Counter({
      name: 'concord_register_snapshots_total',
      help: "Registers by where their initial state was read: 'cache' (L1, at the cache consumer's cursor) or 'database'.",
      labelNames: ['source'],
      registers: [registry],
    }),
    loginFailures: new Counter({
      name: 'concord_auth_failures_total',
      help: 'Failed logins and API-key checks.',
      registers: [registry],
    }),
    imageTransforms: new Counter({
      name: 'concord_image_transforms_total',
      help: 'Image transforms computed (cache misses of the result store).',
      registers: [registry],
    }),
    imageResultsCorrupt: new Counter({
      name: 'concord_image_results_corrupt_total',
      help: 'Cached image results that failed their length/checksum check on read (deleted, regenerated).',
      registers: [registry],
    }),
    jobs: createJobMetrics(registry),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** The job runner's metrics (jobs/runner/): state census, lease health and the lease invariant. */
export function createJobMetrics(registry: Registry) {
  return {
    byState: new Gauge({
      name: 'concord_jobs',
      help: 'Jobs by state (queued, running, retrying, succeeded, failed, canceled).',
      labelNames: ['state'],
      registers: [registry],
    }),
    oldestRunning: new Gauge({
      name: 'concord_jobs_oldest_running_seconds',
      help: 'Age of the oldest running attempt.',
      registers: [registry],
    }),
    unclaimed: new Gauge({
      name: 'concord_jobs_unclaimed',
      help: 'Due jobs that no runner claimed within the bound (reported, not silently queued).',
      registers: [registry],
    }),
    leaseExpiries: new Counter({
      name: 'concord_job_lease_expiries_total',
      help: 'Attempts whose lease expired (worker lost, paused or past its deadline).',
      registers: [registry],
    }),
    rescues: new Counter({
      name: 'concord_job_rescues_total',
      help: 'Jobs the reaper moved on after an expired lease, by where they went.',
      labelNames: ['to'],
      registers: [registry],
    }),
    fencedOff: new Counter({
      name: 'concord_job_fenced_writes_total',
      help: 'Writes and transitions rejected because the attempt no longer held its lease.',
      registers: [registry],
    }),
    leaseInvariantViolations: new Gauge({
      name: 'concord_job_lease_invariant_violations',
      help: 'Jobs holding a lease expired for longer than lease + reaper interval (must be 0).',
      registers: [registry],
    }),
  };
}

export type JobMetrics = ReturnType<typeof createJobMetrics>;
