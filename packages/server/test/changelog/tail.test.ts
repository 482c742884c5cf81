import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Change } from '../../src/changelog/change.js';
import { LocalDoorbell } from '../../src/changelog/doorbell.js';
import { ChangeLog } from '../../src/changelog/log.js';
import type { LogTailOptions } from '../../src/changelog/tail.js';
import { LogTail } from '../../src/changelog/tail.js';
import { backends } from '../support/backends.js';
import type { TestStore } from '../store/fixture.js';
import { appendCommand, openTestStore, range, sleep, tagOf, until, within } from '../store/fixture.js';

/** A doorbell that never rings: every ring is lost, as when a NOTIFY connection is down. */
class SilentDoorbell extends LocalDoorbell {
  override ring(): void {}
}

/** Consecutive seqs of every batch, and the batches themselves, as a tail applied them. */
function seqsOf(batches: Change[][]): number[] {
  return batches.flat().map((c) => c.seq);
}

describe.each(backends())('LogTail on %s', (backend) => {
  let t: TestStore;
  let log: ChangeLog;
  const tails: LogTail[] = [];

  /** A tail over `log` (stopped in afterEach) that records every batch it applies. */
  function follow(opts: Partial<LogTailOptions> & { on?: ChangeLog } = {}) {
    const batches: Change[][] = [];
    const { on, ...rest } = opts;
    const tail = new LogTail(on ?? log, {
      name: 'test',
      from: 0,
      // Far longer than any test: unless a test says otherwise, only the doorbell moves the tail.
      pollMs: 600_000,
      apply: (changes) => void batches.push(changes),
      ...rest,
    });
    tails.push(tail);
    return { tail, batches };
  }

  beforeEach(async () => {
    t = await openTestStore(backend);
    log = new ChangeLog(t.store, new LocalDoorbell());
  });
  afterEach(async () => {
    await Promise.all(tails.splice(0).map((tail) => tail.stop()));
    await log.doorbell.close();
    await t.cleanup();
  });

  it('delivers each change once, in commit order, in batches that start at the cursor', async () => {
    const { tail, batches } = follow({ batchSize: 4 });
    tail.start();
    const tags: string[] = [];
    // One command at a time, each awaited by the tail, then a burst of concurrent ones.
    for (let c = 1; c <= 5; c++) {
      const seq = await appendCommand(log, `one${c}`, 1 + (c % 3));
      tags.push(...range(0, c % 3).map((i) => `one${c}/${i}`));
      await within(tail.waitFor(seq), `the tail to apply ${seq}`);
    }
    const burst = await Promise.all(range(1, 12).map((c) => appendCommand(log, `burst${c}`, 1 + (c % 3))));
    const head = await log.head();
    expect(Math.max(...burst)).toBe(head);
    await within(tail.waitFor(head), `the tail to apply ${head}`);

    expect(seqsOf(batches)).toEqual(range(1, head));
    expect(batches.every((b) => b.length <= 4)).toBe(true);
    expect(
      batches
        .flat()
        .slice(0, tags.length)
        .map((c) => tagOf(c)),
    ).toEqual(tags);
    expect(tail.cursor).toBe(head);
  });

  it('catches up through the safety-net poll when the doorbell never rings', async () => {
    const silent = new SilentDoorbell();
    const heard: (number | null)[] = [];
    silent.subscribe((seq) => heard.push(seq));
    const quiet = new ChangeLog(t.store, silent);
    let passes = 0;
    const { tail, batches } = follow({ on: quiet, pollMs: 20, onLag: () => void passes++ });
    tail.start();
    // Let the first pass find the log empty, so that only the poll can find what comes next.
    await until(() => passes > 0, 'the first pass');
    const head = await appendCommand(quiet, 'unannounced', 3);
    await appendCommand(quiet, 'unannounced-too', 1);
    // `until` only looks at the cursor: waitFor would poke the tail itself.
    await until(() => tail.cursor === head + 1, 'the poll to bring the tail to the head');
    expect(seqsOf(batches)).toEqual(range(1, head + 1));
    expect(heard).toEqual([]);
  });

  it('resolves waitFor(seq) exactly when that change has been applied, not before', async () => {
    const resolved = new Set<number>();
    const earlyResolutions: number[] = [];
    const { tail, batches } = follow({
      batchSize: 2,
      apply: async (changes) => {
        // While a batch is being applied, nobody waiting for it may have been let go yet.
        for (const c of changes) if (resolved.has(c.seq)) earlyResolutions.push(c.seq);
        await sleep(1);
        for (const c of changes) if (resolved.has(c.seq)) earlyResolutions.push(c.seq);
        batches.push(changes);
      },
    });
    tail.start();
    const lateResolutions: string[] = [];
    const waits = range(1, 6).map((seq) =>
      tail.waitFor(seq).then(() => {
        resolved.add(seq);
        if (!seqsOf(batches).includes(seq) || tail.cursor < seq) {
          lateResolutions.push(`${seq} resolved with cursor ${tail.cursor}`);
        }
      }),
    );
    await appendCommand(log, 'a', 2);
    await appendCommand(log, 'b', 3);
    await within(Promise.all(waits.slice(0, 5)), 'waiters for 1..5');
    // 6 is not written yet: a full catch-up must leave its waiter pending.
    await within(tail.catchUp(), 'catch-up');
    expect(resolved.has(6)).toBe(false);
    await appendCommand(log, 'c', 1);
    await within(waits[5]!, 'the waiter for 6');

    expect(earlyResolutions).toEqual([]);
    expect(lateResolutions).toEqual([]);
    // Already applied: resolves at once, before any I/O.
    let now = false;
    const immediate = tail.waitFor(3).then(() => (now = true));
    await Promise.resolve();
    expect(now).toBe(true);
    await immediate;
  });

  it('resets a restarted tail to the oldest retained seq after prune removed what followed its cursor', async () => {
    const resets: { cursor: number; oldest: number }[] = [];
    const { tail, batches } = follow({
      reset: (info) => {
        resets.push(info);
        return info.oldest - 1;
      },
    });
    tail.start();
    const stoppedAt = await appendCommand(log, 'before', 3);
    await within(tail.waitFor(stoppedAt), 'the tail to reach the first command');
    await tail.stop();

    for (let c = 1; c <= 10; c++) await appendCommand(log, `while-stopped${c}`);
    const head = await log.head();
    await log.prune({ maxAgeMs: 3_600_000, maxCount: 3 });
    expect(await log.oldest()).toBe(head - 2);

    tail.start();
    await until(() => tail.cursor === head, 'the restarted tail to reach the head');
    expect(resets).toEqual([{ cursor: stoppedAt, oldest: head - 2 }]);
    expect(seqsOf(batches)).toEqual([...range(1, stoppedAt), head - 2, head - 1, head]);

    // And it goes on following.
    const next = await appendCommand(log, 'after', 2);
    await within(tail.waitFor(next), 'the tail to follow after the reset');
    expect(seqsOf(batches).slice(-2)).toEqual([next - 1, next]);
  });

  it('resets a restarted tail when prune removed everything after its cursor', async () => {
    const resets: { cursor: number; oldest: number }[] = [];
    const { tail, batches } = follow({
      reset: (info) => {
        resets.push(info);
        return info.oldest - 1;
      },
    });
    tail.start();
    const stoppedAt = await appendCommand(log, 'before', 2);
    await within(tail.waitFor(stoppedAt), 'the tail to reach the first command');
    await tail.stop();

    const head = await appendCommand(log, 'while-stopped', 4);
    // Everything is older than the age limit: nothing is retained, but the head stays.
    await log.prune({ maxAgeMs: 0, maxCount: 1000, now: Date.now() + 1 });
    expect(await log.oldest()).toBeNull();
    expect(await log.head()).toBe(head);

    tail.start();
    // The entries after the cursor are gone although nothing newer exists yet: the tail must not
    // sit at its old cursor believing it is caught up while its state misses head - cursor changes.
    await until(() => resets.length > 0, 'the restarted tail to reset');
    expect(resets).toEqual([{ cursor: stoppedAt, oldest: head + 1 }]);
    await until(() => tail.cursor === head, 'the tail to continue from the head');
    const next = await appendCommand(log, 'after');
    await within(tail.waitFor(next), 'the tail to follow after the reset');
    expect(seqsOf(batches)).toEqual([...range(1, stoppedAt), next]);
  });

  it('reports through onError when it fell behind the retained log and has no reset handler', async () => {
    const errors: unknown[] = [];
    const { tail, batches } = follow({ onError: (err) => errors.push(err) });
    tail.start();
    const stoppedAt = await appendCommand(log, 'before');
    await within(tail.waitFor(stoppedAt), 'the tail to reach the first command');
    await tail.stop();
    for (let c = 1; c <= 5; c++) await appendCommand(log, `while-stopped${c}`);
    await log.prune({ maxAgeMs: 3_600_000, maxCount: 2 });

    tail.start();
    await until(() => errors.length > 0, 'the tail to report the gap');
    expect(String(errors[0])).toMatch(/consumer test fell behind the retained log/);
    // It applied nothing past the gap and did not move its cursor.
    expect(tail.cursor).toBe(stoppedAt);
    expect(seqsOf(batches)).toEqual([stoppedAt]);
  });

  it('reports its lag as head - cursor after every pass', async () => {
    const lags: { lag: number; cursor: number; head: number }[] = [];
    let sneaked: number | null = null;
    const { tail } = follow({
      apply: async (changes) => {
        // While the tail applies 1..3, another command commits: the pass ends one behind.
        if (sneaked === null && changes.at(-1)!.seq === 3) sneaked = await appendCommand(log, 'sneaked');
      },
      onLag: (lag, cursor, head) => lags.push({ lag, cursor, head }),
    });
    await appendCommand(log, 'first', 3);
    tail.start();
    await until(() => lags.some((l) => l.cursor === 4), 'the tail to pass 4');

    expect(sneaked).toBe(4);
    for (const l of lags) expect(l.lag).toBe(l.head - l.cursor);
    expect(lags).toContainEqual({ lag: 1, cursor: 3, head: 4 });
    expect(lags.at(-1)).toEqual({ lag: 0, cursor: 4, head: 4 });
  });

  it('property: any interleaving of appends and restarts delivers exactly the appended seqs, once, in order', async () => {
    type Op =
      | { op: 'append'; count: number }
      | { op: 'burst'; counts: number[] }
      | { op: 'restart' }
      | { op: 'replace' }
      | { op: 'settle' };
    const count = fc.integer({ min: 1, max: 3 });
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 4, arbitrary: fc.record({ op: fc.constant('append' as const), count }) },
      {
        weight: 2,
        arbitrary: fc.record({
          op: fc.constant('burst' as const),
          counts: fc.array(count, { minLength: 2, maxLength: 4 }),
        }),
      },
      { weight: 2, arbitrary: fc.constant({ op: 'restart' as const }) },
      { weight: 2, arbitrary: fc.constant({ op: 'replace' as const }) },
      { weight: 1, arbitrary: fc.constant({ op: 'settle' as const }) },
    );
    let run = 0;

    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 14 }), fc.constantFrom(15, 600_000), async (ops, pollMs) => {
        run += 1;
        const name = `prop-${run}`;
        const start = await log.head();
        const delivered: Change[] = [];
        const expectedTags: string[] = [];
        const make = (from: number) =>
          follow({
            name,
            from,
            pollMs,
            batchSize: 3,
            // A durable consumer: it saves its cursor with what it applied.
            apply: async (changes) => {
              delivered.push(...changes);
              await log.saveCursor(name, changes.at(-1)!.seq);
            },
          }).tail;
        let tail = make(start);
        tail.start();
        let k = 0;
        const append = async (n: number) => {
          const tag = `${name}-${++k}`;
          const seq = await appendCommand(log, tag, n);
          return { tag, n, seq };
        };
        const written: { tag: string; n: number; seq: number }[] = [];
        for (const o of ops) {
          if (o.op === 'append') written.push(await append(o.count));
          else if (o.op === 'burst') written.push(...(await Promise.all(o.counts.map(append))));
          else if (o.op === 'restart') {
            await tail.stop();
            tail.start();
          } else if (o.op === 'replace') {
            await tail.stop();
            tail = make((await log.loadCursor(name)) ?? start);
            tail.start();
          } else {
            await within(tail.waitFor(await log.head()), 'the tail to settle');
          }
        }
        const head = await log.head();
        await within(tail.waitFor(head), `the tail to reach ${head}`);
        await tail.stop();

        for (const w of [...written].sort((a, b) => a.seq - b.seq)) {
          expectedTags.push(...range(0, w.n - 1).map((i) => `${w.tag}/${i}`));
        }
        expect(delivered.map((c) => c.seq)).toEqual(range(start + 1, head));
        expect(delivered.map((c) => tagOf(c))).toEqual(expectedTags);
      }),
      { numRuns: 25 },
    );
  });
});
