import { useCallback, useEffect, useState } from 'react';
import { call, callWithRetry, describeError, sendFile } from '../api.js';
import { isActive, JobView } from '../components/JobView.js';
import { Notice } from '../components/Notice.js';
import type { Source, SourceInput } from '../components/SourceForm.js';
import { SourceForm } from '../components/SourceForm.js';
import { SyncHistory } from '../components/SyncHistory.js';
import type { JobStatus, LiveStore } from '../live.js';
import { isAdmin, useLive } from '../live.js';

type Feedback = { kind: 'error' | 'success'; text: string } | null;
type Listed = Source & { active_sync: JobStatus | null };

const BASE = '/concord/directory_sources';
/** The job runner's singleton key of a source's syncs (server: jobs/directory/sync.ts). */
const syncKey = (id: number) => `directory-source:${id}`;

/**
 * The newest sync of a source that this page knows of: from the list, from a "sync now" answer, or
 * from `concord_job` events (which win for the same job: they are the latest word on it).
 */
function currentJob(live: LiveStore, source: Listed, started: JobStatus | undefined): JobStatus | null {
  let best: JobStatus | null = null;
  for (const j of [source.active_sync, started]) if (j && (!best || j.id > best.id)) best = j;
  for (const j of live.jobs.values())
    if (j.singleton_key === syncKey(source.id) && (!best || j.id >= best.id)) best = j;
  return best;
}

/** One source: its settings, its current sync live, "sync now", cancel, edit, delete, history. */
function SourceCard(props: {
  source: Listed;
  started: JobStatus | undefined;
  act(fn: () => Promise<unknown>, ok: string): Promise<boolean>;
  onStarted(job: JobStatus): void;
  reload(): void;
}) {
  const { source, act } = props;
  const live = useLive();
  const [file, setFile] = useState<File | null>(null);
  const [editing, setEditing] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const job = currentJob(live, source, props.started);
  const active = job !== null && isActive(job);
  const titleId = `source-${source.id}-title`;

  async function syncNow(e: React.FormEvent) {
    e.preventDefault();
    let job: JobStatus | undefined;
    const ok = await act(async () => {
      const path = `${BASE}/${source.id}/sync`;
      const r =
        source.connector === 'csv'
          ? await sendFile<{ job: JobStatus }>(live.session, path, file!)
          : await call<{ job: JobStatus }>(live.session, 'POST', path);
      job = r.job;
    }, `A sync of ${source.name} has started.`);
    if (ok && job) props.onStarted(job);
  }

  return (
    <article className="card source" aria-labelledby={titleId} data-source-id={source.id}>
      <h2 id={titleId}>
        {source.name} <span className="badge">{source.connector.toUpperCase()}</span>
      </h2>
      <p className="muted">
        {source.connector === 'ldap'
          ? `${String(source.settings.url ?? '')} · ${
              source.schedule_seconds ? `every ${source.schedule_seconds / 3600} h` : 'manual syncs only'
            }`
          : 'Each sync reads the CSV file uploaded with it (external_id,email,full_name,channels).'}
        {source.deactivate_missing ? ' · deactivates people missing from it' : ''}
      </p>

      <h3>Current sync</h3>
      {job ? <JobView job={job} label={`the sync of ${source.name}`} /> : <p className="muted">None yet.</p>}

      <form className="inline-form" onSubmit={(e) => void syncNow(e)}>
        {source.connector === 'csv' && (
          <label>
            CSV file for {source.name}
            <input
              type="file"
              accept=".csv,text/csv"
              onChange={(e) => setFile(e.target.files?.[0] ?? null)}
            />
          </label>
        )}
        <button type="submit" disabled={active || (source.connector === 'csv' && !file)}>
          Sync now
        </button>
        {active && (
          <button
            type="button"
            className="secondary"
            onClick={() =>
              void act(() => call(live.session, 'POST', `${BASE}/${source.id}/cancel`), 'Cancel requested.')
            }
          >
            Cancel sync
          </button>
        )}
      </form>

      <details>
        <summary>History</summary>
        <SyncHistory
          session={live.session}
          sourceId={source.id}
          version={`${job?.id ?? 0}:${job && !active ? job.state : ''}`}
        />
      </details>

      <div className="actions">
        <button
          type="button"
          className="secondary"
          onClick={() => setEditing(!editing)}
          aria-expanded={editing}
        >
          Edit
        </button>
        {confirmDelete ? (
          <>
            <button
              type="button"
              className="danger"
              onClick={() =>
                void act(
                  () => call(live.session, 'DELETE', `${BASE}/${source.id}`),
                  `${source.name} is deleted.`,
                ).then((ok) => ok && props.reload())
              }
            >
              Delete {source.name} for good
            </button>
            <button type="button" className="secondary" onClick={() => setConfirmDelete(false)}>
              Keep it
            </button>
          </>
        ) : (
          <button type="button" className="secondary" onClick={() => setConfirmDelete(true)}>
            Delete…
          </button>
        )}
      </div>
      {editing && (
        <SourceForm
          initial={source}
          onCancel={() => setEditing(false)}
          onSubmit={async (input: SourceInput) => {
            const { connector: _c, ...changes } = input;
            const ok = await act(
              () => call(live.session, 'PATCH', `${BASE}/${source.id}`, changes),
              `${input.name} is saved.`,
            );
            if (ok) {
              setEditing(false);
              props.reload();
            }
            return ok;
          }}
        />
      )}
    </article>
  );
}

/** Administration of directory sources (CSV and LDAP), with each sync's live status and history. */
export function DirectorySources() {
  const live = useLive();
  const state = live.state!;
  const [sources, setSources] = useState<Listed[] | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [feedback, setFeedback] = useState<Feedback>(null);
  const [started, setStarted] = useState(new Map<number, JobStatus>());
  const [retrying, setRetrying] = useState(false);

  const load = useCallback(async () => {
    setLoadError(null);
    try {
      const r = await callWithRetry<{ sources: Listed[] }>(
        live.session,
        'GET',
        BASE,
        {},
        {
          onRetry: () => setRetrying(true),
        },
      );
      setSources(r.sources);
    } catch (err) {
      setLoadError(describeError(err));
    } finally {
      setRetrying(false);
    }
  }, [live.session]);

  // Reload after a reconnect: job events missed while the queue was gone are not replayed.
  useEffect(() => {
    if (live.status === 'live') void load();
  }, [load, live.status]);

  if (!isAdmin(state.users.get(state.userId)))
    return <p role="alert">Only administrators can see this page.</p>;

  async function act(fn: () => Promise<unknown>, ok: string): Promise<boolean> {
    setFeedback(null);
    try {
      await fn();
      setFeedback({ kind: 'success', text: ok });
      return true;
    } catch (err) {
      setFeedback({ kind: 'error', text: describeError(err) });
      return false;
    }
  }

  return (
    <section aria-labelledby="directory-title">
      <h1 id="directory-title">Directory sources</h1>
      <p className="muted">
        People and channel memberships synced from an LDAP directory or a CSV file. A sync creates, updates
        and (if asked) deactivates people, and joins them to the channels the directory names.
      </p>
      {feedback && <Notice kind={feedback.kind}>{feedback.text}</Notice>}
      {loadError && (
        <Notice kind="error">
          Could not load the sources: {loadError}{' '}
          <button type="button" className="link" onClick={() => void load()}>
            Retry now
          </button>
        </Notice>
      )}
      {retrying && <p className="muted">The server is busy; trying again…</p>}
      {sources === null && !loadError && <p className="muted">Loading…</p>}
      {sources?.length === 0 && <p>No directory source yet.</p>}
      {sources?.map((s) => (
        <SourceCard
          key={s.id}
          source={s}
          started={started.get(s.id)}
          act={act}
          onStarted={(job) => setStarted((m) => new Map(m).set(s.id, job))}
          reload={() => void load()}
        />
      ))}
      <SourceForm
        onSubmit={async (input) => {
          const ok = await act(
            () => call(live.session, 'POST', BASE, { ...input }),
            `${input.name} is created.`,
          );
          if (ok) void load();
          return ok;
        }}
      />
    </section>
  );
}
