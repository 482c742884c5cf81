import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { enqueueDueSyncs } from '../../src/jobs/directory/scheduler.js';
import { DIRECTORY_SYNC_JOB, syncKey } from '../../src/jobs/directory/sync.js';
import { runnerOptions } from '../../src/jobs/runner/options.js';
import { backends } from '../support/backends.js';
import type { DirectoryCore } from './fixture.js';
import { addSource, openDirectoryCore } from './fixture.js';

const ldap = { url: 'ldap://127.0.0.1:1', bind_dn: 'cn=a', bind_password: 'p', user_base_dn: 'o=x' };

describe.each(backends())('directory schedules on %s', (backend) => {
  let core: DirectoryCore;
  const options = runnerOptions({
    nodeId: 'n',
    jobLeaseSeconds: 10,
    jobReaperSeconds: 5,
    jobConcurrency: 1,
    jobMaxAttempts: 3,
    jobDeadlineSeconds: 600,
  });
  beforeAll(async () => {
    core = await openDirectoryCore(backend);
  });
  afterAll(() => core?.dispose());

  test('no scheduled source: a tick writes nothing', async () => {
    await addSource(core, { name: 'manual', connector: 'ldap', settings: ldap, scheduleSeconds: null });
    const head = await core.log.head();
    expect(await enqueueDueSyncs(core.log, core.realmId, options)).toEqual([]);
    expect(await core.log.head()).toBe(head);
  });

  test('a due LDAP source gets one sync at a time, again once its interval has passed', async () => {
    const hourly = await addSource(core, {
      name: 'hourly',
      connector: 'ldap',
      settings: ldap,
      scheduleSeconds: 3600,
    });
    // CSV sources sync only when a file is uploaded, whatever their schedule says.
    await addSource(core, { name: 'csv', connector: 'csv', settings: {}, scheduleSeconds: 60 });
    expect(await enqueueDueSyncs(core.log, core.realmId, options)).toEqual([hourly]);
    // Its sync is active: no second one.
    expect(await enqueueDueSyncs(core.log, core.realmId, options)).toEqual([]);
    const jobs = await core.store.db
      .selectFrom('jobs')
      .selectAll()
      .where('singleton_key', '=', syncKey(hourly))
      .execute();
    expect(jobs.map((j) => [j.kind, JSON.parse(j.payload)])).toEqual([
      [DIRECTORY_SYNC_JOB, { sourceId: hourly }],
    ]);

    // Interval not yet over since the last sync was created, then over.
    const setAge = (ms: number) =>
      core.store.db
        .updateTable('jobs')
        .set({ state: 'succeeded', created_at: Date.now() - ms })
        .where('id', '=', jobs[0]!.id)
        .execute();
    await setAge(3_540_000);
    expect(await enqueueDueSyncs(core.log, core.realmId, options)).toEqual([]);
    await setAge(3_601_000);
    expect(await enqueueDueSyncs(core.log, core.realmId, options)).toEqual([hourly]);
  });
});
