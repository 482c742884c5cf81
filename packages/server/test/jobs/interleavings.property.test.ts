import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lease } from '../../src/jobs/job.js';
import { FencedOffError } from '../../src/jobs/job.js';
import { claimJobs } from '../../src/jobs/runner/claim.js';
import { enqueueJob } from '../../src/jobs/runner/enqueue.js';
import { assertHeld, heartbeat } from '../../src/jobs/runner/lease.js';
import { reapExpired } from '../../src/jobs/runner/reaper.js';
import { endAttempt } from '../../src/jobs/runner/transitions.js';
import { backends } from '../support/backends.js';
import type { JobDb } from './fixture.js';
import { freshJobDb, manualClock, testOptions } from './fixture.js';

const LEASE = 1000;
const WORKERS = 3;

/** One step of a random schedule. */
type Step =
  | { op: 'claim' | 'heartbeat' | 'write' | 'complete' | 'fail'; worker: number }
  | { op: 'advance'; ms: number }
  | { op: 'reap' };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constantFrom('claim', 'heartbeat', 'write', 'complete', 'fail' as const),
      worker: fc.integer({ min: 0, max: WORKERS - 1 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 2 * LEASE }) }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('reap' as const) }) },
);

describe.each(backends())(
  'random interleavings of claim, heartbeat, expiry, reaping and completion (%s)',
  (backend) => {
    let db: JobDb;
    let run = 0;

    beforeAll(async () => {
      db = await freshJobDb(backend);
    });
    afterAll(async () => {
      await db?.cleanup();
    });

    it('every job terminates, and no two attempts of a job both write', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 3 }),
          fc.constantFrom(0, 100),
          fc.array(step, { maxLength: 40 }),
          async (jobCount, backoffMs, steps) => {
            const kind = `prop.${backend}.${++run}`;
            const clock = manualClock();
            const opts = testOptions({
              clock,
              leaseMs: LEASE,
              reaperMs: 100,
              backoffMs,
              maxBackoffMs: 400,
              maxAttempts: 3,
            });
            const jobIds: number[] = [];
            for (let i = 0; i < jobCount; i++) {
              const { value } = await db.log.run(db.realmId, (ctx) =>
                enqueueJob(ctx, { kind, payload: null }, opts),
              );
              jobIds.push(value.job.id);
            }
            const held: (Lease | null)[] = Array.from({ length: WORKERS }, () => null);
            const latestClaim = new Map<number, number>();
            const writes = new Map<number, number[]>(); // job → attempts whose writes committed, in order

            const claim = async (w: number) => {
              // A worker that claims again abandons whatever lease it held (as if it had crashed).
              held[w] = null;
              const [row] = await claimJobs(db.log, db.realmId, [kind], 1, opts);
              if (!row) return;
              expect(row.attempt).toBeGreaterThan(latestClaim.get(row.id) ?? 0);
              latestClaim.set(row.id, row.attempt);
              held[w] = {
                jobId: row.id,
                attempt: row.attempt,
                token: row.lease_token!,
                expiresAt: Number(row.lease_expires_at),
              };
            };
            const fenced = async (w: number | Lease, fn: (lease: Lease) => Promise<void>) => {
              const lease = typeof w === 'number' ? held[w] : w;
              if (!lease) return;
              try {
                await fn(lease);
              } catch (err) {
                // An adversarial worker: it ignores the rejection and keeps its stale lease, to try again.
                if (!(err instanceof FencedOffError)) throw err;
              }
            };
            const apply = async (s: Step | { op: 'write'; worker: Lease }) => {
              switch (s.op) {
                case 'advance':
                  return clock.advance(s.ms);
                case 'reap':
                  return void (await reapExpired(db.log, db.realmId, opts));
                case 'claim':
                  return claim(s.worker);
                case 'heartbeat': {
                  const lease = held[s.worker];
                  if (!lease) return;
                  const beat = await heartbeat(db.log.store.db, lease, Infinity, LEASE, clock());
                  expect(beat.held).toBe(lease.attempt === latestClaim.get(lease.jobId) && beat.held);
                  return;
                }
                case 'write':
                  return fenced(s.worker, async (lease) => {
                    await db.log.run(db.realmId, async (ctx) => {
                      await assertHeld(ctx.trx, lease, clock());
                      await ctx.trx
                        .updateTable('jobs')
                        .set({ error: `written by ${lease.attempt}` })
                        .where('id', '=', lease.jobId)
                        .execute();
                    });
                    // Committed: it must be the newest attempt, and no newer attempt may have written.
                    expect(lease.attempt).toBe(latestClaim.get(lease.jobId));
                    const list = writes.get(lease.jobId) ?? [];
                    expect(list.every((a) => a <= lease.attempt)).toBe(true);
                    writes.set(lease.jobId, [...list, lease.attempt]);
                  });
                case 'complete':
                case 'fail':
                  return fenced(s.worker, async (lease) => {
                    await endAttempt(
                      db.log,
                      db.realmId,
                      lease,
                      s.op === 'complete' ? { outcome: 'succeeded' } : { outcome: 'failed', error: 'x' },
                      opts,
                    );
                    expect(lease.attempt).toBe(latestClaim.get(lease.jobId));
                    held[s.worker as number] = null;
                  });
              }
            };
            for (const s of steps) await apply(s);

            // Then the world goes on: time passes, reapers reap, workers claim and finish. Every job must end.
            for (let round = 0; round < 20; round++) {
              const rows = await db.log.store.db
                .selectFrom('jobs')
                .select(['id', 'state'])
                .where('kind', '=', kind)
                .execute();
              if (rows.every((r) => ['succeeded', 'failed', 'canceled'].includes(r.state))) return;
              clock.advance(LEASE + 500);
              await reapExpired(db.log, db.realmId, opts);
              // Workers take over; then every worker that held an older lease tries to write with it.
              const stale = [...held];
              for (let w = 0; w < WORKERS; w++) await claim(w);
              for (const lease of stale) if (lease) await apply({ op: 'write', worker: lease });
              for (let w = 0; w < WORKERS; w++) await apply({ op: 'write', worker: w });
              if (round > 0) for (let w = 0; w < WORKERS; w++) await apply({ op: 'complete', worker: w });
            }
            throw new Error(`jobs ${jobIds.join(', ')} did not terminate`);
          },
        ),
        {
          numRuns: backend === 'sqlite' ? 100 : 40,
          // The schedule a fence exists for, always tried: an attempt expires, is taken over, and
          // the old worker then writes and completes.
          examples: [
            [
              1,
              0,
              [
                { op: 'claim', worker: 0 },
                { op: 'write', worker: 0 },
                { op: 'advance', ms: LEASE + 1 },
                { op: 'reap' },
                { op: 'claim', worker: 1 },
                { op: 'write', worker: 0 },
                { op: 'write', worker: 1 },
                { op: 'complete', worker: 0 },
                { op: 'complete', worker: 1 },
              ],
            ],
          ],
        },
      );
    });
  },
);
