import pino from 'pino';
import { applyEvent, normalizeState, stateFromRegister } from '@concord/client';
import type { ClientState, RegisterResponse, ZulipEvent } from '@concord/client';
import { Registry } from 'prom-client';
import { createCacheMetrics } from '../../src/cache/cacheMetrics.js';
import { startCoherence } from '../../src/cache/coherence.js';
import { CachedReads } from '../../src/cache/reads.js';
import { TieredCache } from '../../src/cache/tieredCache.js';
import { LocalDoorbell } from '../../src/changelog/doorbell.js';
import type { CommandContext } from '../../src/changelog/log.js';
import { ChangeLog } from '../../src/changelog/log.js';
import { LogTail } from '../../src/changelog/tail.js';
import { ensureRealm } from '../../src/domain/realm/ensureRealm.js';
import { ConcordError } from '../../src/errors.js';
import { QueueService } from '../../src/events/queueService.js';
import { register } from '../../src/events/register.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { zulipContract } from '../support/openapi.js';
import type { Store } from '../../src/store/store.js';

/** A Concord core (store, log, events tail, queues) without HTTP, for fast property tests. */
export interface Core {
  store: Store;
  log: ChangeLog;
  realmId: number;
  queues: QueueService;
  tail: LogTail;
  /** Registers on a core opened with `cache: true` read their state from the cache when they can. */
  snapshotSources: { cache: number; database: number };
  /** Brings a core's cache up to the log head (a no-op without cache). */
  catchUpCache(): Promise<void>;
  /** Queues that always read the database (for {@link freshState}, the ground truth). */
  reference: QueueService;
  run<T>(fn: (ctx: CommandContext) => Promise<T>): Promise<T | ConcordError>;
  close(): Promise<void>;
}

const present = { externalUrl: 'http://concord.test', host: 'concord.test' };

/**
 * Opens an in-memory core. `open` may pass another store (PostgreSQL) instead. With `cache`, the
 * core has a node's cache (L1, invalidated from the log by its own consumer, which may lag) and
 * registers read their state from it.
 */
export async function openCore(store?: Store, opts: { cache?: boolean } = {}): Promise<Core> {
  const s = store ?? (await openSqliteStore(':memory:'));
  const log = new ChangeLog(s, new LocalDoorbell());
  const realmId = await ensureRealm(log, 'Test');
  const logger = pino({ level: 'silent' });
  const timing = { idleTimeoutMs: 600_000, longpollSeconds: 90 };
  const snapshotSources = { cache: 0, database: 0 };
  let coherence: ReturnType<typeof startCoherence> | null = null;
  let reads: CachedReads | undefined;
  let catchUpCache = async () => {};
  if (opts.cache) {
    // The cache follows the log as a peer node's would: it hears of changes committed here only
    // when the test rings its own doorbell (catchUpCache), so it lags by whole steps.
    const cacheBell = new LocalDoorbell();
    const metrics = createCacheMetrics(new Registry());
    const cache = new TieredCache({ maxBytes: 64 * 1024 * 1024, metrics });
    const cacheLog = new ChangeLog(s, cacheBell);
    coherence = startCoherence({
      log: cacheLog,
      cache,
      from: await log.head(),
      pollMs: 60_000,
      metrics,
      logger,
    });
    const tail = coherence.tail;
    reads = new CachedReads(s, cache, realmId, () => tail.cursor);
    catchUpCache = () => tail.catchUp();
  }
  const queues = new QueueService(s, log, realmId, present, timing, logger, {
    cache: reads,
    onSnapshot: (source) => (snapshotSources[source] += 1),
  });
  const reference = new QueueService(s, log, realmId, present, timing, logger);
  const start = await log.head();
  queues.startAt(start);
  const tail = new LogTail(log, {
    name: 'events',
    from: start,
    pollMs: 60_000,
    apply: (c) => queues.onChanges(c),
  });
  tail.start();
  return {
    store: s,
    log,
    realmId,
    queues,
    reference,
    snapshotSources,
    catchUpCache,
    tail,
    async run(fn) {
      try {
        return (await log.run(realmId, fn)).value;
      } catch (err) {
        if (err instanceof ConcordError) return err;
        throw err;
      }
    },
    async close() {
      await queues.close();
      await reference.close();
      await tail.stop();
      await coherence?.stop();
      await log.doorbell.close();
      await s.close();
    },
  };
}

/** A registered client: its store fed by the same reducer the client package uses. */
export interface TestClient {
  userId: number;
  queueId: string;
  lastEventId: number;
  state: ClientState;
  received: ZulipEvent[];
  /** Registered with the `archived_channels` client capability. */
  archivedChannels: boolean;
}

export async function registerClient(
  core: Core,
  userId: number,
  archivedChannels = false,
): Promise<TestClient> {
  const { body } = await register(
    core.queues,
    userId,
    { eventTypes: null, fetchEventTypes: null, includeSubscribers: true, archivedChannels },
    90,
  );
  const r = body as unknown as RegisterResponse;
  return {
    userId,
    queueId: r.queue_id!,
    lastEventId: r.last_event_id,
    state: stateFromRegister(r),
    received: [],
    archivedChannels,
  };
}

/** What a fresh register would show this user now. */
export async function freshState(core: Core, userId: number, archivedChannels = false): Promise<unknown> {
  const { body } = await register(
    core.reference,
    userId,
    { eventTypes: null, fetchEventTypes: null, includeSubscribers: true, archivedChannels },
    90,
  );
  await core.reference.delete(String(body.queue_id), userId);
  return normalizeState(stateFromRegister(body as unknown as RegisterResponse));
}

/**
 * Delivers everything pending to the client (as GET /events with dont_block would) and applies it.
 * Returns 'ended' when the server says the queue is gone (the client must re-register).
 */
export async function drain(
  core: Core,
  client: TestClient,
  onEvent?: (e: ZulipEvent) => void,
): Promise<'ok' | 'ended'> {
  await core.tail.catchUp();
  for (;;) {
    let events;
    try {
      events = await core.queues.poll(client.queueId, client.userId, client.lastEventId, { dontBlock: true });
    } catch (err) {
      if (err instanceof ConcordError && err.code === 'BAD_EVENT_QUEUE_ID') return 'ended';
      throw err;
    }
    if (events.length === 0) return 'ok';
    for (const event of events) {
      if (event.id <= client.lastEventId)
        throw new Error(`event ${event.id} delivered again after ${client.lastEventId}`);
      // Every delivered event must match Zulip's event schema for its type and op.
      zulipContract().validateEvent(event);
      onEvent?.(event);
      client.received.push(event);
      applyEvent(client.state, event);
      client.lastEventId = event.id;
    }
  }
}
