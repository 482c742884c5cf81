import type { Kysely } from 'kysely';
import type { Committed, CommandContext } from '../../src/changelog/log.js';
import { Role } from '../../src/domain/roles.js';
import { createUser } from '../../src/domain/users/createUser.js';
import type { JobCounts, JobRun, RowError } from '../../src/jobs/job.js';
import type { SourceInput } from '../../src/jobs/directory/sources.js';
import { createSource } from '../../src/jobs/directory/sources.js';
import type { DirectorySyncPayload } from '../../src/jobs/directory/sync.js';
import { directorySyncJob } from '../../src/jobs/directory/sync.js';
import { openPostgresStore } from '../../src/store/postgres.js';
import type { Database } from '../../src/store/schema.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import type { Backend } from '../support/backends.js';
import { freshPgSchema } from '../support/backends.js';
import type { Core } from '../events/harness.js';
import { openCore } from '../events/harness.js';

/** A core with an owner, on `backend`, for directory sync tests. */
export interface DirectoryCore extends Core {
  ownerId: number;
  dispose(): Promise<void>;
}

export async function openDirectoryCore(backend: Backend): Promise<DirectoryCore> {
  let drop = async () => {};
  let store;
  if (backend === 'postgres') {
    const schema = await freshPgSchema();
    drop = schema.drop;
    store = await openPostgresStore(schema.url, 4);
  } else {
    store = await openSqliteStore(':memory:');
  }
  const core = await openCore(store);
  const owner = (
    await core.log.run(core.realmId, (ctx) =>
      createUser(
        ctx,
        null,
        { email: 'owner@example.com', fullName: 'Owner', role: Role.OWNER },
        { passwordHashCost: 4 },
      ),
    )
  ).value;
  return {
    ...core,
    ownerId: owner.id,
    async dispose() {
      await core.close();
      await drop();
    },
  };
}

export async function addSource(
  core: DirectoryCore,
  input: Partial<SourceInput> & Pick<SourceInput, 'connector' | 'settings'>,
): Promise<number> {
  const actor = { id: core.ownerId, realm_id: core.realmId, role: Role.OWNER, is_active: 1 };
  const row = await core.log.run(core.realmId, (ctx) =>
    createSource(ctx, actor, { name: 'dir', scheduleSeconds: null, deactivateMissing: true, ...input }),
  );
  return row.value.id;
}

/** What one sync attempt recorded through the test run (a stand-in for the runner's row). */
export interface SyncOutcome {
  progress: { done: number; total: number | null; counts: Partial<JobCounts> }[];
  rowErrors: RowError[];
  commands: number;
  error?: unknown;
}

/**
 * Runs the sync handler once with a JobRun whose fence is the plain change log: a stand-in for the
 * job runner (tested on its own), so these tests exercise the sync against real databases.
 */
export async function syncOnce(
  core: DirectoryCore,
  payload: DirectorySyncPayload,
  opts: {
    signal?: AbortSignal;
    pageSize?: number;
    onCommit?: (n: number) => Promise<void>;
    /** The n-th fenced command throws after all its writes (so its transaction rolls back). */
    failCommand?: number;
  } = {},
): Promise<SyncOutcome> {
  const outcome: SyncOutcome = { progress: [], rowErrors: [], commands: 0 };
  const run: JobRun<DirectorySyncPayload> = {
    jobId: 1,
    kind: 'directory.sync',
    payload,
    attempt: 1,
    lease: { jobId: 1, attempt: 1, token: 't', expiresAt: Number.MAX_SAFE_INTEGER },
    signal: opts.signal ?? new AbortController().signal,
    async fenced<T>(fn: (ctx: CommandContext) => Promise<T>): Promise<Committed<T>> {
      const n = outcome.commands + 1;
      const result = await core.log.run(core.realmId, async (ctx) => {
        const value = await fn(ctx);
        if (n === opts.failCommand) throw new Error(`command ${n} failed after its writes`);
        return value;
      });
      outcome.commands++;
      await opts.onCommit?.(outcome.commands);
      return result;
    },
    async progress(done, total, counts) {
      outcome.progress.push({ done, total, counts: { ...counts } });
    },
    async rowErrors(errors) {
      outcome.rowErrors.push(...errors);
    },
  };
  try {
    await directorySyncJob({ store: core.store, pageSize: opts.pageSize })(run);
  } catch (err) {
    outcome.error = err;
  }
  return outcome;
}

/** The counts of the last progress report. */
export const lastCounts = (o: SyncOutcome): Partial<JobCounts> => o.progress.at(-1)?.counts ?? {};

/** Linked users as the database holds them: external id → name, email, active. */
export async function linkedUsers(db: Kysely<Database>, sourceId: number) {
  const rows = await db
    .selectFrom('directory_links')
    .innerJoin('users', 'users.id', 'directory_links.user_id')
    .select([
      'directory_links.external_id',
      'users.id',
      'users.full_name',
      'users.delivery_email',
      'users.is_active',
    ])
    .where('directory_links.source_id', '=', sourceId)
    .execute();
  return new Map(rows.map((r) => [r.external_id, r]));
}

/** Channel name → sorted external ids of its linked, active subscribers. */
export async function channelMembers(db: Kysely<Database>, sourceId: number): Promise<Map<string, string[]>> {
  const rows = await db
    .selectFrom('directory_groups')
    .innerJoin('streams', 'streams.id', 'directory_groups.stream_id')
    .leftJoin('subscriptions', 'subscriptions.stream_id', 'streams.id')
    .leftJoin('directory_links', (j) =>
      j
        .onRef('directory_links.user_id', '=', 'subscriptions.user_id')
        .on('directory_links.source_id', '=', sourceId),
    )
    .leftJoin('users', 'users.id', 'subscriptions.user_id')
    .select(['streams.name', 'directory_links.external_id', 'users.is_active'])
    .where('directory_groups.source_id', '=', sourceId)
    .execute();
  const out = new Map<string, string[]>();
  for (const r of rows) {
    const list = out.get(r.name) ?? [];
    if (r.external_id && r.is_active === 1) list.push(r.external_id);
    out.set(r.name, list);
  }
  for (const list of out.values()) list.sort();
  return out;
}

/** Changes appended to the log after `since`, by kind. */
export async function changesSince(core: Core, since: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (let cursor = since; ;) {
    const batch = await core.log.readSince(cursor, 5000);
    if (batch.length === 0) return out;
    for (const c of batch) out.set(c.kind, (out.get(c.kind) ?? 0) + 1);
    cursor = batch.at(-1)!.seq;
  }
}
