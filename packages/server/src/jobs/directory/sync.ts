import type { Store } from '../../store/store.js';
import { Role } from '../../domain/roles.js';
import type { JobHandler } from '../job.js';
import { applyPlan } from './apply.js';
import { readCsv } from './csv.js';
import { readLdap } from './ldap.js';
import { planSync } from './plan.js';
import { ldapSettingsSchema } from './settings.js';
import type { DirectorySnapshot } from './snapshot.js';
import { DirectorySourceError } from './snapshot.js';

/** The job kind of a directory sync. */
export const DIRECTORY_SYNC_JOB = 'directory.sync';

/** What a sync job carries: its source, and for CSV the uploaded file. */
export interface DirectorySyncPayload {
  sourceId: number;
  csv?: string;
}

/** The singleton key that keeps one active sync per source. */
export const syncKey = (sourceId: number): string => `directory-source:${sourceId}`;

export interface DirectorySyncDeps {
  store: Store;
  /** Work units per fenced page (default 500). */
  pageSize?: number;
}

async function readSource(
  source: { connector: string; settings: string },
  payload: DirectorySyncPayload,
  signal: AbortSignal,
): Promise<DirectorySnapshot> {
  if (source.connector === 'csv') {
    if (payload.csv === undefined)
      throw new DirectorySourceError('bad_settings', 'a CSV source syncs only with an uploaded file');
    return readCsv(payload.csv);
  }
  const parsed = ldapSettingsSchema.safeParse(JSON.parse(source.settings));
  if (!parsed.success)
    throw new DirectorySourceError(
      'bad_settings',
      `LDAP settings are invalid: ${parsed.error.issues[0]?.message}`,
    );
  return readLdap(parsed.data, signal);
}

/**
 * The work of one sync attempt: read the whole source (failing before any write if it cannot be
 * read), plan the differences against the database, record the per-row errors, and apply the plan
 * page by page under the fence. A retried attempt plans again from what earlier pages committed,
 * so it never applies anything twice.
 */
export function directorySyncJob(deps: DirectorySyncDeps): JobHandler<DirectorySyncPayload> {
  return async (run) => {
    const source = await deps.store.db
      .selectFrom('directory_sources')
      .selectAll()
      .where('id', '=', run.payload.sourceId)
      .executeTakeFirst();
    if (!source)
      throw new DirectorySourceError(
        'bad_settings',
        `directory source ${run.payload.sourceId} no longer exists`,
      );
    const snapshot = await readSource(source, run.payload, run.signal);
    run.signal.throwIfAborted();
    const owner = await deps.store.db
      .selectFrom('users')
      .select('id')
      .where('realm_id', '=', source.realm_id)
      .where('role', '=', Role.OWNER)
      .where('is_active', '=', 1)
      .orderBy('id')
      .executeTakeFirst();
    if (!owner) throw new Error('the organization has no active owner for a directory sync to act as');
    const plan = await planSync(
      deps.store.db,
      source.realm_id,
      { id: source.id, deactivateMissing: source.deactivate_missing === 1 },
      snapshot,
      owner.id,
    );
    if (plan.rowErrors.length > 0) await run.rowErrors(plan.rowErrors);
    await applyPlan(run, source.id, plan, {
      pageSize: deps.pageSize,
    });
  };
}
