import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Doorbell } from '../../src/changelog/doorbell.js';
import { LocalDoorbell, PostgresDoorbell, notifyChannel } from '../../src/changelog/doorbell.js';
import { ChangeLog } from '../../src/changelog/log.js';
import { LogTail } from '../../src/changelog/tail.js';
import { openPostgresStore } from '../../src/store/postgres.js';
import type { Store } from '../../src/store/store.js';
import { freshPgSchema } from '../support/backends.js';
import type { TestStore } from '../store/fixture.js';
import { openTestStore, range, recordTagged, sleep, tagOf, within } from '../store/fixture.js';
import type { ReadBatch } from './read-trace.js';
import { pollTrace, traceViolations } from './read-trace.js';

const WRITERS = 8;
const COMMANDS_PER_WRITER = 125;
const quiet = pino({ level: 'silent' });

/*
 * The spine's promise (DESIGN.md): seq order is commit order, so a reader that tails
 * `seq > cursor` sees every entry exactly once, in order, and nothing ever appears behind its
 * cursor. Many writers commit at once, with pauses inside their transactions to widen every race,
 * while two readers follow: a tight polling loop and a LogTail woken by the doorbell.
 */

/** Pauses after the append and before the commit, where a naive design would expose a later seq first. */
class SlowAnnouncePg extends PostgresDoorbell {
  override async announce(trx: Kysely<unknown>, seq: number): Promise<void> {
    await super.announce(trx, seq);
    if (Math.random() < 0.3) await sleep(1);
  }
}

class SlowAnnounceLocal extends LocalDoorbell {
  override async announce(trx: Kysely<unknown>, seq: number): Promise<void> {
    await super.announce(trx, seq);
    if (Math.random() < 0.3) await sleep(1);
  }
}

/** What the writers committed: each command's tag, how many changes it recorded and its last seq. */
interface Written {
  tag: string;
  count: number;
  last: number;
}

/** WRITERS concurrent writers, each running COMMANDS_PER_WRITER commands of 1–3 changes. */
async function writeConcurrently(log: ChangeLog): Promise<Written[]> {
  const perWriter = await Promise.all(
    range(1, WRITERS).map(async (w) => {
      const written: Written[] = [];
      for (let c = 1; c <= COMMANDS_PER_WRITER; c++) {
        const tag = `w${w}c${c}`;
        const count = c % 4 === 0 ? 1 + (c % 3) : 1;
        const { seq } = await log.run(1, async (ctx) => {
          if (Math.random() < 0.3) await sleep(1);
          for (let i = 0; i < count; i++) recordTagged(ctx, `${tag}/${i}`);
        });
        written.push({ tag, count, last: seq! });
      }
      return written;
    }),
  );
  return perWriter.flat();
}

/**
 * Runs the writers against `writer` while a polling reader and a doorbell-driven LogTail follow
 * through `reader`, then checks both traces against the final contents of the log.
 */
async function orderingScenario(writer: ChangeLog, reader: ChangeLog): Promise<void> {
  let writersDone = false;
  let readsDuringWrites = 0;

  const tailReads: ReadBatch[] = [];
  const tailErrors: unknown[] = [];
  const tail = new LogTail(reader, {
    name: 'ordering',
    from: 0,
    batchSize: 64,
    // Far longer than the test: after its first pass the tail moves only when the doorbell rings.
    pollMs: 600_000,
    apply: (changes) => {
      tailReads.push({ cursor: tail.cursor, seqs: changes.map((c) => c.seq) });
    },
    onError: (err) => tailErrors.push(err),
  });
  tail.start();

  try {
    const polling = pollTrace(
      async (cursor) => {
        const seqs = (await reader.readSince(cursor, 64)).map((c) => c.seq);
        if (!writersDone && seqs.length > 0) readsDuringWrites++;
        return seqs;
      },
      () => writersDone,
    );
    const written = await writeConcurrently(writer).finally(() => {
      writersDone = true;
    });
    const pollReads = await within(polling, 'the polling reader to finish');
    const total = written.reduce((n, w) => n + w.count, 0);
    await within(tail.waitFor(total), `the doorbell-driven tail to reach ${total} (it is at ${tail.cursor})`);

    // The final scan: what the log holds once everyone is done.
    const all = await reader.readSince(0, 1_000_000);
    const seqs = all.map((c) => c.seq);
    expect(await reader.head()).toBe(total);
    expect(seqs).toEqual(range(1, total));

    // Each command's changes are contiguous and in the order it recorded them, ending at its seq.
    const bySeq = new Map(all.map((c) => [c.seq, tagOf(c)]));
    for (const w of written) {
      const got = range(w.last - w.count + 1, w.last).map((s) => bySeq.get(s));
      expect(got).toEqual(range(0, w.count - 1).map((i) => `${w.tag}/${i}`));
    }

    expect(tailErrors).toEqual([]);
    expect(traceViolations(pollReads, seqs)).toEqual([]);
    expect(traceViolations(tailReads, seqs)).toEqual([]);
    // The check had something to check: the reader tailed the log while it was being written.
    expect(readsDuringWrites).toBeGreaterThan(10);
  } finally {
    await tail.stop();
  }
}

describe.skipIf(!process.env.CONCORD_TEST_PG)('change-log ordering on postgres', () => {
  let schema: Awaited<ReturnType<typeof freshPgSchema>>;
  const stores: Store[] = [];
  const bells: Doorbell[] = [];
  let writerStore: Store;
  let readerStore: Store;
  let writer: ChangeLog;
  let reader: ChangeLog;

  beforeAll(async () => {
    schema = await freshPgSchema();
    // Two nodes on one schema: node A writes through 10 connections, node B reads.
    writerStore = await openPostgresStore(schema.url, 10);
    stores.push(writerStore);
    readerStore = await openPostgresStore(schema.url, 3);
    stores.push(readerStore);
    const channel = notifyChannel(writerStore.scope);
    const writerBell = new SlowAnnouncePg(schema.url, channel, quiet);
    bells.push(writerBell);
    await writerBell.start();
    const readerBell = new PostgresDoorbell(schema.url, channel, quiet);
    bells.push(readerBell);
    await readerBell.start();
    writer = new ChangeLog(writerStore, writerBell);
    reader = new ChangeLog(readerStore, readerBell);
  });
  afterAll(async () => {
    await Promise.all(bells.map((b) => b.close()));
    await Promise.all(stores.map((s) => s.close()));
    await schema?.drop();
  });

  it('8 connections committing 1,000 commands while two readers tail: every seq once, in order, none behind a cursor', async () => {
    await orderingScenario(writer, reader);
  });

  it('negative control: the same checker catches a log numbered by a sequence without the head lock', async () => {
    // The naive design: each transaction takes the next number from a sequence and commits
    // whenever it is done, so a later number can commit (and be read past) before an earlier one.
    // (`SELECT max(seq) + 1` without a lock is naive too, but it fails loudly with duplicate keys;
    // the sequence fails silently, which is what the checker is for.)
    await sql`CREATE TABLE naive_changes (seq bigserial PRIMARY KEY, tag text NOT NULL)`.execute(
      writerStore.db,
    );
    const attempts: string[][] = [];
    for (let attempt = 1; attempt <= 5; attempt++) {
      await sql`TRUNCATE naive_changes RESTART IDENTITY`.execute(writerStore.db);
      let done = false;
      const polling = pollTrace(
        async (cursor) =>
          (
            await sql<{ seq: number }>`
              SELECT seq FROM naive_changes WHERE seq > ${cursor} ORDER BY seq LIMIT 64`.execute(
              readerStore.db,
            )
          ).rows.map((r) => Number(r.seq)),
        () => done,
      );
      await Promise.all(
        range(1, WRITERS).map(async (w) => {
          for (let c = 1; c <= 40; c++) {
            await writerStore.db.transaction().execute(async (trx) => {
              await sql`INSERT INTO naive_changes (tag) VALUES (${`w${w}c${c}`})`.execute(trx);
              await sleep(Math.random() < 0.5 ? 1 : 0);
            });
          }
        }),
      ).finally(() => {
        done = true;
      });
      const reads = await within(polling, 'the naive reader to finish');
      const { rows } = await sql<{ seq: number }>`SELECT seq FROM naive_changes ORDER BY seq`.execute(
        readerStore.db,
      );
      const violations = traceViolations(
        reads,
        rows.map((r) => Number(r.seq)),
      );
      attempts.push(violations);
      if (violations.length > 0) break;
    }
    expect(
      attempts.some((v) => v.length > 0),
      `5 attempts with ${WRITERS} unlocked writers produced no out-of-order visibility`,
    ).toBe(true);
    expect(attempts.at(-1)!.join('\n')).toMatch(/were not visible while|appeared behind the cursor/);
  });
});

describe('change-log ordering on sqlite', () => {
  let t: TestStore;
  let log: ChangeLog;
  afterEach(async () => {
    await log?.doorbell.close();
    await t?.cleanup();
  });

  it('8 writers committing 1,000 commands while two readers tail: every seq once, in order, none behind a cursor', async () => {
    t = await openTestStore('sqlite');
    log = new ChangeLog(t.store, new SlowAnnounceLocal());
    await orderingScenario(log, log);
  });
});

describe('the read-trace checker', () => {
  it('accepts a trace that saw every seq once, in order, each read starting at its cursor', () => {
    const reads = [
      { cursor: 0, seqs: [1, 2] },
      { cursor: 2, seqs: [3] },
      { cursor: 3, seqs: [4, 5, 6] },
    ];
    expect(traceViolations(reads, range(1, 6))).toEqual([]);
  });

  it('reports an entry that became visible after a later one, behind the cursor', () => {
    // 3 commits before 2: the reader sees 3, moves past 2, and 2 shows up behind it.
    const reads = [
      { cursor: 0, seqs: [1] },
      { cursor: 1, seqs: [3] },
      { cursor: 3, seqs: [4] },
    ];
    expect(traceViolations(reads, range(1, 4))).toEqual([
      'read 1 after cursor 1 began at 3: 2..2 were not visible while 3 was',
      'seq 2 was committed but never seen: it appeared behind the cursor, which passed it at read 1',
    ]);
  });

  it('reports duplicates, out-of-order batches, cursor jumps and entries that are not in the log', () => {
    const reads = [
      { cursor: 0, seqs: [1, 3, 2] },
      { cursor: 2, seqs: [3] },
      { cursor: 3, seqs: [4, 9] },
    ];
    expect(traceViolations(reads, range(1, 4))).toEqual([
      'read 0 returned 2 after 3: not increasing',
      'read 1 started after 2, but the reader had reached 3',
      'seq 3 seen twice (reads 0 and 1)',
      'seq 9 was seen but is not in the log',
    ]);
  });
});
