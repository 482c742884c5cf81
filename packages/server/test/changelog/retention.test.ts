import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDoorbell } from '../../src/changelog/doorbell.js';
import { ChangeLog } from '../../src/changelog/log.js';
import { backends } from '../support/backends.js';
import type { TestStore } from '../store/fixture.js';
import { appendCommand, openTestStore, range, until } from '../store/fixture.js';

const HOUR = 3_600_000;

describe.each(backends())('change-log retention on %s', (backend) => {
  let t: TestStore;
  let log: ChangeLog;

  beforeEach(async () => {
    t = await openTestStore(backend);
    log = new ChangeLog(t.store, new LocalDoorbell());
  });
  afterEach(async () => {
    await log.doorbell.close();
    await t.cleanup();
  });

  const retained = async () => (await log.readSince(0, 1_000_000)).map((c) => c.seq);

  /** Appends commands until the clock has moved past every entry they wrote; returns their newest time. */
  async function appendThenLetTimePass(tag: string, commands: number): Promise<number> {
    for (let c = 1; c <= commands; c++) await appendCommand(log, `${tag}${c}`, 1 + (c % 3));
    const newest = Math.max(...(await log.readSince(0, 1_000_000)).map((c) => c.createdAt));
    await until(() => Date.now() > newest, 'the clock to move past the last entry');
    return newest;
  }

  it('prunes by count down to the newest N, and no further when run again', async () => {
    for (let c = 1; c <= 8; c++) await appendCommand(log, `c${c}`, 1 + (c % 3));
    const head = await log.head();

    expect(await log.prune({ maxAgeMs: HOUR, maxCount: 5 })).toBe(head - 5);
    expect(await retained()).toEqual(range(head - 4, head));
    expect(await log.oldest()).toBe(head - 4);
    expect(await log.head()).toBe(head);

    expect(await log.prune({ maxAgeMs: HOUR, maxCount: 5 })).toBe(0);
    expect(await log.prune({ maxAgeMs: HOUR, maxCount: head })).toBe(0);
    expect(await retained()).toEqual(range(head - 4, head));
  });

  it('prunes by age: entries older than the limit go, entries at or inside it stay', async () => {
    await appendThenLetTimePass('old', 4);
    const oldHead = await log.head();
    for (let c = 1; c <= 3; c++) await appendCommand(log, `new${c}`, 2);
    const fresh = (await log.readSince(oldHead)).map((c) => c.createdAt);
    const cutoff = Math.min(...fresh);

    // Nothing is older than an hour.
    expect(await log.prune({ maxAgeMs: HOUR, maxCount: 1_000_000 })).toBe(0);
    // Cut off exactly at the first new entry: it is not older than the limit, so it stays.
    expect(await log.prune({ maxAgeMs: 1000, maxCount: 1_000_000, now: cutoff + 1000 })).toBe(oldHead);
    expect(await retained()).toEqual(range(oldHead + 1, oldHead + 6));
    expect(await log.oldest()).toBe(oldHead + 1);
    expect(await log.head()).toBe(oldHead + 6);

    // With the real clock: once time has passed, a zero age limit removes everything.
    await until(() => Date.now() > Math.max(...fresh), 'the clock to move past the new entries');
    expect(await log.prune({ maxAgeMs: 0, maxCount: 1_000_000 })).toBe(6);
    expect(await log.oldest()).toBeNull();
  });

  it('never moves the head back: after pruning everything, seqs continue from the old head', async () => {
    for (let c = 1; c <= 4; c++) await appendCommand(log, `c${c}`, 2);
    expect(await log.prune({ maxAgeMs: HOUR, maxCount: 0 })).toBe(8);
    expect(await log.head()).toBe(8);
    expect(await log.oldest()).toBeNull();
    expect(await log.readSince(0)).toEqual([]);

    expect(await appendCommand(log, 'after', 2)).toBe(10);
    expect(await log.oldest()).toBe(9);
    expect(await retained()).toEqual([9, 10]);
  });

  it('property: under any mix of appends and prunes the head only grows and the retained log is [oldest, head]', async () => {
    type Op =
      { op: 'append'; count: number } | { op: 'keep'; count: number } | { op: 'expire' } | { op: 'ageNoop' };
    const op: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 4,
        arbitrary: fc.record({ op: fc.constant('append' as const), count: fc.integer({ min: 1, max: 3 }) }),
      },
      {
        weight: 3,
        arbitrary: fc.record({ op: fc.constant('keep' as const), count: fc.integer({ min: 0, max: 6 }) }),
      },
      { weight: 1, arbitrary: fc.constant({ op: 'expire' as const }) },
      { weight: 1, arbitrary: fc.constant({ op: 'ageNoop' as const }) },
    );

    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 12 }), async (ops) => {
        // The model: the head, and the lowest seq still retained (head + 1 when none is).
        let head = await log.head();
        let from = (await log.oldest()) ?? head + 1;
        for (const o of ops) {
          if (o.op === 'append') {
            // Seqs continue from the head whatever was pruned; `from` stays put (or, when nothing
            // was retained, already equals the first new seq).
            expect(await appendCommand(log, 'p', o.count)).toBe(head + o.count);
            head += o.count;
          } else if (o.op === 'keep') {
            const next = Math.max(from, head - o.count + 1);
            expect(await log.prune({ maxAgeMs: HOUR, maxCount: o.count })).toBe(next - from);
            from = next;
          } else if (o.op === 'expire') {
            const deleted = await log.prune({
              maxAgeMs: HOUR,
              maxCount: 1_000_000,
              now: Date.now() + 2 * HOUR,
            });
            expect(deleted).toBe(head + 1 - from);
            from = head + 1;
          } else {
            expect(await log.prune({ maxAgeMs: HOUR, maxCount: 1_000_000, now: 0 })).toBe(0);
          }
          expect(await log.head()).toBe(head);
          expect(await log.oldest()).toBe(from > head ? null : from);
          expect(await retained()).toEqual(range(from, head));
        }
      }),
      { numRuns: 30 },
    );
  });
});
