import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import pg from 'pg';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Doorbell } from '../../src/changelog/doorbell.js';
import { PostgresDoorbell, notifyChannel } from '../../src/changelog/doorbell.js';
import { ChangeLog } from '../../src/changelog/log.js';
import { LogTail } from '../../src/changelog/tail.js';
import { openPostgresStore } from '../../src/store/postgres.js';
import type { Store } from '../../src/store/store.js';
import { freshPgSchema } from '../support/backends.js';
import { appendCommand, until, within } from '../store/fixture.js';

const quiet = pino({ level: 'silent' });

/**
 * A doorbell whose transaction fails right after it sent its NOTIFY, so the NOTIFY is rolled back.
 * It names no channel, so the log calls announce() rather than notifying in its append statement.
 */
class AbortAfterAnnounce extends PostgresDoorbell {
  override async announce(trx: Kysely<unknown>, seq: number): Promise<void> {
    await super.announce(trx, seq);
    throw new Error('aborted after announcing');
  }

  override get notifyChannel(): undefined {
    return undefined;
  }
}

/** `store`, but every write transaction fails after its work (the log's append included) is done. */
const abortingAfterWork = (store: Store): Store => ({
  ...store,
  writeTransaction: (fn) =>
    store.writeTransaction(async (trx) => {
      await fn(trx);
      throw new Error('aborted after the append');
    }),
});

/** `url` with an application_name, so that one node's LISTEN connection can be found (and killed). */
function named(url: string, name: string): string {
  const u = new URL(url);
  u.searchParams.set('application_name', name);
  return u.toString();
}

describe.skipIf(!process.env.CONCORD_TEST_PG)('PostgresDoorbell', () => {
  let schema: Awaited<ReturnType<typeof freshPgSchema>>;
  let channel: string;
  let listenerName: string;
  const stores: Store[] = [];
  const bells: Doorbell[] = [];
  const tails: LogTail[] = [];
  /** Node A writes; node B only listens. */
  let a: ChangeLog;
  let b: { log: ChangeLog; bell: PostgresDoorbell; heard: (number | null)[] };

  /** Backend pids of node B's LISTEN connection. */
  async function listenerPids(): Promise<number[]> {
    const { rows } = await sql<{ pid: number }>`
      SELECT pid FROM pg_stat_activity
      WHERE application_name = ${listenerName} AND query = ${`LISTEN "${channel}"`}`.execute(a.store.db);
    return rows.map((r) => r.pid);
  }

  beforeEach(async () => {
    schema = await freshPgSchema();
    listenerName = `doorbell-b-${schema.schema}`;
    const storeA = await openPostgresStore(schema.url, 3);
    stores.push(storeA);
    channel = notifyChannel(storeA.scope);
    const bellA = new PostgresDoorbell(schema.url, channel, quiet);
    bells.push(bellA);
    await bellA.start();
    a = new ChangeLog(storeA, bellA);

    const storeB = await openPostgresStore(schema.url, 2);
    stores.push(storeB);
    expect(storeB.scope).toBe(storeA.scope);
    const bellB = new PostgresDoorbell(named(schema.url, listenerName), notifyChannel(storeB.scope), quiet);
    bells.push(bellB);
    await bellB.start();
    const heard: (number | null)[] = [];
    bellB.subscribe((seq) => heard.push(seq));
    b = { log: new ChangeLog(storeB, bellB), bell: bellB, heard };
  });
  afterEach(async () => {
    await Promise.all(tails.splice(0).map((t) => t.stop()));
    await Promise.all(bells.splice(0).map((bell) => bell.close()));
    // Closing a doorbell ends its LISTEN connection and stops it reconnecting.
    await until(async () => (await listenerPids()).length === 0, "node B's LISTEN connection to close");
    await Promise.all(stores.splice(0).map((s) => s.close()));
    await schema.drop();
  });

  it("rings node B with the head seq of node A's commit", async () => {
    const seq = await appendCommand(a, 'from-a', 2);
    await until(() => b.heard.includes(seq), `node B to hear ${seq}`);
    expect(b.heard).toEqual([seq]);

    // And a consumer on node B follows by the ring alone.
    const applied: number[] = [];
    const tail = new LogTail(b.log, {
      name: 'b',
      from: await b.log.head(),
      pollMs: 600_000,
      apply: (changes) => void applied.push(...changes.map((c) => c.seq)),
    });
    tails.push(tail);
    tail.start();
    const next = await appendCommand(a, 'from-a-again', 3);
    await within(tail.waitFor(next), 'the tail on node B to apply what node A committed');
    expect(applied).toEqual([seq + 1, seq + 2, seq + 3]);
  });

  it('never delivers a NOTIFY whose transaction rolled back', async () => {
    // Through the change log: three changes appended and announced (head 3), then rolled back.
    const aborting = new ChangeLog(a.store, new AbortAfterAnnounce(schema.url, channel, quiet));
    await expect(appendCommand(aborting, 'doomed', 3)).rejects.toThrow('aborted after announcing');
    // The same with the NOTIFY sent by the append statement itself (how PostgreSQL stores append).
    const bell = new PostgresDoorbell(schema.url, channel, quiet);
    expect(bell.notifyChannel).toBe(channel);
    const inStatement = new ChangeLog(abortingAfterWork(a.store), bell);
    await expect(appendCommand(inStatement, 'doomed too', 2)).rejects.toThrow('aborted after the append');
    // And by hand.
    await expect(
      a.store.writeTransaction(async (trx) => {
        await sql`SELECT pg_notify(${channel}, '999')`.execute(trx);
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');

    // Notifications arrive in commit order: once B hears a later commit, an earlier one would
    // have arrived before it.
    const seq = await appendCommand(a, 'committed');
    expect(seq).toBe(1);
    await until(() => b.heard.includes(seq), `node B to hear ${seq}`);
    expect(b.heard).toEqual([1]);
  });

  it('is scoped to its database and schema: a ring on another channel is not heard', async () => {
    const other = notifyChannel(`${a.store.scope}-other`);
    expect(other).not.toBe(channel);
    const client = new pg.Client({ connectionString: schema.url });
    await client.connect();
    try {
      await client.query('SELECT pg_notify($1, $2)', [other, '42']);
    } finally {
      await client.end();
    }
    const seq = await appendCommand(a, 'mine');
    await until(() => b.heard.includes(seq), `node B to hear ${seq}`);
    expect(b.heard).toEqual([seq]);
  });

  it('reconnects after its LISTEN connection is killed, rings null, and rings for later commits', async () => {
    const before = await appendCommand(a, 'before');
    await until(() => b.heard.includes(before), `node B to hear ${before}`);
    const applied: number[] = [];
    const tail = new LogTail(b.log, {
      name: 'b',
      from: before,
      pollMs: 600_000,
      apply: (changes) => void applied.push(...changes.map((c) => c.seq)),
    });
    tails.push(tail);
    tail.start();

    const [killed, ...more] = await listenerPids();
    expect(killed).toBeDefined();
    expect(more).toEqual([]);
    expect(b.bell.connected).toBe(true);
    b.heard.length = 0;
    await sql`SELECT pg_terminate_backend(${killed!})`.execute(a.store.db);

    await until(() => !b.bell.connected, 'node B to notice its LISTEN connection died');
    // A commit that may land while B is deaf: the null ring on reconnect makes B re-read.
    const during = await appendCommand(a, 'while-deaf', 2);
    await until(() => b.heard.includes(null), 'node B to reconnect and ring null');
    expect(b.bell.connected).toBe(true);
    const pids = await listenerPids();
    expect(pids).toHaveLength(1);
    expect(pids[0]).not.toBe(killed);
    await within(tail.waitFor(during), 'the tail to catch up after the reconnect');

    const after = await appendCommand(a, 'after');
    await until(() => b.heard.includes(after), `node B to hear ${after} after reconnecting`);
    await within(tail.waitFor(after), 'the tail to follow after the reconnect');
    expect(applied).toEqual([before + 1, before + 2, before + 3]);
  });
});
