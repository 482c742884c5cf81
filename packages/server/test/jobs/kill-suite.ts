import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobRunner } from '../../src/jobs/runner/runner.js';
import type { Backend } from '../support/backends.js';
import type { WorkerChild } from './children.js';
import { spawnWorker } from './children.js';
import type { JobDb } from './fixture.js';
import { freshJobDb, metricValue, testMetrics, testOptions, until } from './fixture.js';
import type { PagesPayload } from './pages.js';
import { PAGES_JOB, createJobData, jobData } from './pages.js';

const LEASE_MS = 300;
const REAPER_MS = 100;
const KILLS = 50;
/**
 * Scheduling slack on top of lease + reaper interval, for a loaded two-core machine running other
 * test files at the same time; the measured figures are printed.
 */
const SLACK_MS = 1500;
const workerOptions = {
  leaseMs: LEASE_MS,
  reaperMs: REAPER_MS,
  concurrency: 2,
  maxAttempts: 12,
  backoffMs: 0,
};
const payload = (seed: number): PagesPayload => ({ pages: 6, rows: 5, pageMs: 20, seed });

/** The kill test on one backend (one file per backend, so that the two run in parallel). */
export function killSuite(backend: Backend): void {
  describe(`SIGKILL of job workers at random points (${backend})`, () => {
    let db: JobDb;
    const workers: WorkerChild[] = [];

    beforeAll(async () => {
      db = await freshJobDb(backend);
      await createJobData(db.log);
    });
    afterAll(async () => {
      await Promise.all(workers.map((w) => w.stop()));
      await db?.cleanup();
    });

    const enqueue = async (seed: number) =>
      (
        await new JobRunner({
          log: db.log,
          realmId: db.realmId,
          options: testOptions(workerOptions),
        }).enqueue({
          kind: PAGES_JOB,
          payload: payload(seed),
        })
      ).job.id;

    // About 30 s alone; the timeout leaves room for a full suite on two shared cores.
    it(`every job ends succeeded or failed with a reason within lease + reaper interval of each kill, with the data of an uninterrupted run (${KILLS}+ kills)`, async () => {
      // Reference: one uninterrupted run per seed.
      const seeds = [1, 2, 3];
      const reference = new Map<number, unknown>();
      const first = spawnWorker(db, workerOptions);
      workers.push(first);
      await first.ready;
      const refJobs = await Promise.all(seeds.map((s) => enqueue(s)));
      const observer = new JobRunner({
        log: db.log,
        realmId: db.realmId,
        options: testOptions(workerOptions),
      });
      await until(async () => {
        const all = await Promise.all(refJobs.map((id) => observer.status(id)));
        return all.every((s) => s?.state === 'succeeded');
      });
      for (const [i, id] of refJobs.entries()) {
        reference.set(
          seeds[i]!,
          (await jobData(db.log, id)).map(({ page, item, value }) => ({ page, item, value })),
        );
        // (Under a loaded machine even an uninterrupted run may lose a 300 ms lease once; its data
        // must be the same all the same.)
        expect((await observer.runs(id)).at(-1)!.outcome).toBe('succeeded');
      }
      await first.stop();

      // A reaper in this process too, which also watches the lease invariant on every round.
      const metrics = testMetrics();
      const reaper = new JobRunner({
        log: db.log,
        realmId: db.realmId,
        options: testOptions({ ...workerOptions, concurrency: 0 }),
        metrics,
      });
      let maxViolations = 0;
      const reaperLoop = setInterval(() => {
        void reaper
          .reap()
          .then((r) => (maxViolations = Math.max(maxViolations, r?.census.invariantViolations ?? 0)));
      }, REAPER_MS);

      const jobs = new Map<number, number>(); // job id → seed
      const kills: { at: number; attempts: Map<number, number> }[] = [];
      const live: WorkerChild[] = [];
      const addWorker = () => {
        const w = spawnWorker(db, workerOptions);
        workers.push(w);
        live.push(w);
      };
      addWorker();
      addWorker();
      addWorker();
      for (let i = 0; i < 12; i++) {
        const seed = seeds[i % seeds.length]!;
        jobs.set(await enqueue(seed), seed);
      }
      const started = Date.now();
      while (kills.length < KILLS) {
        await sleep(30 + Math.random() * 200);
        // Keep work in the queue.
        if (jobs.size - (await countTerminal([...jobs.keys()])) < 12) {
          const seed = seeds[jobs.size % seeds.length]!;
          jobs.set(await enqueue(seed), seed);
        }
        const busy = live.filter((w) => w.inflight.size > 0);
        if (busy.length === 0) continue;
        const victim = busy[Math.floor(Math.random() * busy.length)]!;
        live.splice(live.indexOf(victim), 1);
        kills.push({ at: Date.now(), attempts: victim.kill() });
        addWorker();
      }
      const killing = Date.now() - started;

      const finals = await until(
        async () => {
          const all = await Promise.all([...jobs.keys()].map((id) => observer.status(id)));
          return all.every((s) => s && ['succeeded', 'failed', 'canceled'].includes(s.state)) && all;
        },
        60_000,
        'every job to end',
      );
      clearInterval(reaperLoop);
      await Promise.all(live.map((w) => w.stop()));

      // Every job ended: succeeded with the reference data, or failed with a reason.
      let succeeded = 0;
      for (const s of finals) {
        if (s!.state === 'succeeded') {
          succeeded++;
          const data = (await jobData(db.log, s!.id)).map(({ page, item, value }) => ({ page, item, value }));
          expect(data).toEqual(reference.get(jobs.get(s!.id)!));
        } else {
          expect(s!.state).toBe('failed');
          expect(s!.error).toMatch(/expired; worker lost/);
        }
      }

      // Every killed attempt was rescued by a reaper within lease + reaper interval of its kill.
      const delays: number[] = [];
      for (const kill of kills) {
        for (const [jobId, attempt] of kill.attempts) {
          const run = (await observer.runs(jobId)).find((r) => r.attempt === attempt)!;
          // A kill just after the attempt's last commit leaves nothing to rescue.
          if (run.outcome === 'succeeded') continue;
          expect(run.outcome).toBe('expired');
          delays.push(run.finished_at! - kill.at);
        }
      }
      delays.sort((a, b) => a - b);
      const p = (q: number) => delays[Math.min(delays.length - 1, Math.floor(q * delays.length))]!;
      console.log(
        `[kill ${backend}] ${kills.length} kills in ${killing} ms, ${delays.length} attempts interrupted, ` +
          `${succeeded}/${finals.length} jobs succeeded; kill→rescue ms p50 ${p(0.5)} p99 ${p(0.99)} max ${delays.at(-1)} ` +
          `(lease ${LEASE_MS} + reaper ${REAPER_MS})`,
      );
      expect(kills.length).toBeGreaterThanOrEqual(KILLS);
      expect(delays.length).toBeGreaterThanOrEqual(KILLS);
      expect(delays.at(-1)!).toBeLessThanOrEqual(LEASE_MS + REAPER_MS + SLACK_MS);
      expect(maxViolations).toBe(0);
      expect(await metricValue(metrics.leaseInvariantViolations)).toBe(0);
    }, 150_000);

    async function countTerminal(ids: number[]): Promise<number> {
      const rows = await db.log.store.db
        .selectFrom('jobs')
        .select('id')
        .where('id', 'in', ids)
        .where('state', 'in', ['succeeded', 'failed', 'canceled'])
        .execute();
      return rows.length;
    }
  });
}
