import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Change } from '../../src/changelog/change.js';
import { NOOP_JOB } from '../../src/jobs/runner/noop.js';
import { JobRunner } from '../../src/jobs/runner/runner.js';
import type { JobStatus } from '../../src/jobs/runner/status.js';
import type { ChangeLog } from '../../src/changelog/log.js';
import type { Backend } from '../support/backends.js';
import { backends, freshDatabase } from '../support/backends.js';
import type { ServerProcess } from '../support/process.js';
import { serverEnv, spawnServer } from '../support/process.js';
import { openJobLog, testOptions, until } from './fixture.js';

const LEASE_S = 1.5;
const metricsOf = async (url: string) => (await fetch(`${url}/metrics`)).text();
const REAPER_S = 0.3;

describe.each(backends())('a whole server restarted during a job (%s)', (backend: Backend) => {
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let log: ChangeLog;
  let realmId: number;
  const servers: ServerProcess[] = [];

  beforeAll(async () => {
    db = await freshDatabase(backend);
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.kill()));
    await log?.store.close();
    await db?.cleanup();
  });

  it('shows the job stalled, then retrying or running again, then succeeded — never stuck', async () => {
    const env = serverEnv(db, {
      CONCORD_JOB_LEASE_SECONDS: String(LEASE_S),
      CONCORD_JOB_REAPER_SECONDS: String(REAPER_S),
      CONCORD_JOB_MAX_ATTEMPTS: '3',
    });
    const first = await spawnServer(env);
    servers.push(first);
    ({ log, realmId } = await openJobLog(
      db.databaseUrl ? { databaseUrl: db.databaseUrl } : { sqliteFile: join(db.dataDir, 'concord.sqlite') },
    ));
    const options = testOptions({ leaseMs: LEASE_S * 1000, reaperMs: REAPER_S * 1000, concurrency: 0 });
    const observer = new JobRunner({ log, realmId, options });
    const head = await log.head();
    const { job } = await observer.enqueue({ kind: NOOP_JOB, payload: { pages: 12, pageMs: 150 } });

    // Watch the status as an administrator's page would, derived from the row at each moment.
    const seen: JobStatus[] = [];
    let watching = true;
    const watch = (async () => {
      while (watching) {
        const s = (await observer.status(job.id))!;
        if (seen.at(-1)?.state !== s.state || seen.at(-1)?.attempt !== s.attempt) seen.push(s);
        await new Promise((r) => setTimeout(r, 25));
      }
    })();

    await until(async () => ((await observer.status(job.id))?.progress.done ?? 0) >= 3, 20_000, 'progress');
    await first.kill();
    await until(() => seen.at(-1)?.state === 'stalled', 10_000, 'the stalled status');
    const second = await spawnServer(env);
    servers.push(second);
    const done = await until(
      async () => {
        const s = await observer.status(job.id);
        return s?.state === 'succeeded' && s;
      },
      30_000,
      'success after the restart',
    );
    watching = false;
    await watch;
    if (seen.at(-1)?.state !== 'succeeded') seen.push(done);
    // The node that rescued the job exports it, and the lease invariant holds once a reaper runs.
    const value = (text: string, name: string) =>
      Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
    const metrics = await until(
      async () => {
        const text = await metricsOf(second.url);
        return value(text, 'concord_jobs\\{state="succeeded"\\}') === 1 && text;
      },
      10_000,
      'the census',
    );
    console.log(
      `[restart ${backend}] ${metrics
        .split('\n')
        .filter((l) => l.startsWith('concord_job'))
        .join('; ')}`,
    );
    expect(value(metrics, 'concord_job_rescues_total\\{to="retrying"\\}')).toBeGreaterThanOrEqual(1);
    expect(value(metrics, 'concord_job_lease_expiries_total')).toBeGreaterThanOrEqual(1);
    expect(value(metrics, 'concord_job_lease_invariant_violations')).toBe(0);
    expect(value(metrics, 'concord_jobs_unclaimed')).toBe(0);
    await second.stop();

    const states = seen.map((s) => `${s.state}#${s.attempt}`);
    console.log(`[restart ${backend}] ${states.join(' → ')}`);
    expect(states[0]).toMatch(/^(queued|running)#/);
    expect(states).toContain('running#1');
    expect(states).toContain('stalled#1');
    // On a loaded machine the new node's attempt may lose its lease too; it still ends.
    expect(states.at(-1)).toMatch(/^succeeded#[2-9]$/);
    // After stalling it never went back to "running" under the old attempt.
    expect(
      states
        .slice(states.indexOf('stalled#1') + 1)
        .every((s) => !s.endsWith('#1') || s.startsWith('retrying')),
    ).toBe(true);
    const stalled = seen.find((s) => s.state === 'stalled')!;
    expect(stalled.retries_at).toBeGreaterThan(0);
    expect(stalled.retry_reason).toMatch(/expired/);
    expect(done).toMatchObject({ progress: { done: 12, total: 12 } });
    const outcomes = (await observer.runs(job.id)).map((r) => r.outcome);
    expect(outcomes[0]).toBe('expired');
    expect(outcomes.at(-1)).toBe('succeeded');
    expect(outcomes).toHaveLength(done.attempt);

    // The log holds each transition, as administrators' queues receive them.
    const logged = (await log.readSince(head, 10_000))
      .filter(
        (c): c is Extract<Change, { kind: 'job.updated' }> =>
          c.kind === 'job.updated' && c.payload.job.id === job.id,
      )
      .map((c) => `${c.payload.job.state}#${c.payload.job.attempt}`);
    const transitions = logged.filter((s, i) => s !== logged[i - 1]);
    expect(transitions.slice(0, 4)).toEqual(['queued#0', 'running#1', 'retrying#1', 'running#2']);
    expect(transitions.at(-1)).toBe(`succeeded#${done.attempt}`);
  });
});
