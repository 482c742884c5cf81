import { useEffect, useState } from 'react';
import { callWithRetry, describeError } from '../api.js';
import type { JobStatus } from '../live.js';
import type { Session } from '../session.js';

/** One sync in a source's history: the job and each of its attempts (server: scheduler.ts). */
interface SyncRun extends JobStatus {
  attempts: {
    attempt: number;
    worker: string;
    outcome: string;
    error: string | null;
    row_errors: { row: string; message: string }[];
    started_at: number;
    finished_at: number | null;
  }[];
}

const when = (ms: number | null) => (ms ? new Date(ms).toLocaleString() : '—');

/**
 * The last syncs of a source, newest first, with the rows each attempt skipped and why. Reloaded
 * whenever `version` changes (the page bumps it when a sync of this source ends).
 */
export function SyncHistory({
  session,
  sourceId,
  version,
}: {
  session: Session;
  sourceId: number;
  version: string;
}) {
  const [runs, setRuns] = useState<SyncRun[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let stopped = false;
    callWithRetry<{ runs: SyncRun[] }>(session, 'GET', `/concord/directory_sources/${sourceId}/runs`, {
      limit: 10,
    })
      .then((r) => !stopped && (setRuns(r.runs), setError(null)))
      .catch((err: unknown) => !stopped && setError(describeError(err)));
    return () => {
      stopped = true;
    };
  }, [session, sourceId, version]);

  if (error) return <p role="alert">Could not load the history: {error}</p>;
  if (!runs) return <p className="muted">Loading the history…</p>;
  if (runs.length === 0) return <p className="muted">No sync yet.</p>;
  return (
    <div className="table-scroll">
      <table className="grid" data-testid="sync-history">
        <caption className="visually-hidden">Sync history</caption>
        <thead>
          <tr>
            <th scope="col">Started</th>
            <th scope="col">State</th>
            <th scope="col">Created / updated / deactivated</th>
            <th scope="col">Skipped rows</th>
          </tr>
        </thead>
        <tbody>
          {runs.map((r) => {
            const rowErrors = r.attempts.flatMap((a) => a.row_errors);
            return (
              <tr key={r.id} data-job-id={r.id}>
                <td>{when(r.started_at ?? r.created_at)}</td>
                <td>
                  <span className={`state state-${r.state}`}>{r.state}</span>
                  {r.error && <div className="muted">{r.error}</div>}
                </td>
                <td>
                  {r.counts.created ?? 0} / {r.counts.updated ?? 0} / {r.counts.deactivated ?? 0}
                </td>
                <td>
                  {rowErrors.length === 0 ? (
                    '0'
                  ) : (
                    <details>
                      <summary>{rowErrors.length}</summary>
                      <ul className="row-errors">
                        {rowErrors.slice(0, 100).map((e, i) => (
                          <li key={i}>
                            <b>{e.row}</b>: {e.message}
                          </li>
                        ))}
                      </ul>
                    </details>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
