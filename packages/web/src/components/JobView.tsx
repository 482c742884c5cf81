import type { JobStatus } from '../live.js';

const stateText: Record<JobStatus['state'], string> = {
  queued: 'Queued',
  running: 'Running',
  retrying: 'Retrying',
  stalled: 'Stalled',
  succeeded: 'Succeeded',
  failed: 'Failed',
  canceled: 'Canceled',
};

const countNames = ['created', 'updated', 'deactivated', 'subscribed', 'unsubscribed', 'skipped'];

/** Whether a job can still change (it holds the source's one sync slot). */
export const isActive = (job: JobStatus) => !['succeeded', 'failed', 'canceled'].includes(job.state);

/** A job's state, progress bar and counts, as one live region. */
export function JobView({ job, label }: { job: JobStatus; label: string }) {
  const { done, total } = job.progress;
  return (
    <div className="job" data-testid="job" data-job-id={job.id} data-state={job.state}>
      <p>
        <span className={`state state-${job.state}`} data-testid="job-state">
          {stateText[job.state] ?? job.state}
        </span>{' '}
        {job.attempt > 1 && (
          <span className="muted">
            attempt {job.attempt} of {job.max_attempts}{' '}
          </span>
        )}
        {job.cancel_requested && isActive(job) && <span className="muted">cancel requested </span>}
      </p>
      <label className="job-progress">
        <span data-testid="job-progress-text">
          {total === null
            ? job.state === 'queued'
              ? 'Waiting for a worker'
              : `${done.toLocaleString('en')} done`
            : `${done.toLocaleString('en')} of ${total.toLocaleString('en')}`}
        </span>
        <progress
          aria-label={`Progress of ${label}`}
          value={total === null ? undefined : done}
          max={Math.max(1, total ?? 1)}
          data-done={done}
          data-total={total ?? ''}
        />
      </label>
      <ul className="counts" aria-label="Counts">
        {countNames.map((k) => (
          <li key={k}>
            <span className="muted">{k}</span>{' '}
            <b data-count={k}>{(job.counts[k] ?? 0).toLocaleString('en')}</b>
          </li>
        ))}
      </ul>
      {job.error && <p className="notice notice-error">{job.error}</p>}
      {job.retry_reason && isActive(job) && <p className="muted">Why it is retrying: {job.retry_reason}</p>}
      {job.unclaimed && <p className="muted">No worker has picked this job up yet.</p>}
    </div>
  );
}
