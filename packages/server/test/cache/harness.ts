import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { CacheMetrics } from '../../src/cache/cacheMetrics.js';
import { createCacheMetrics } from '../../src/cache/cacheMetrics.js';
import type { Coherence } from '../../src/cache/coherence.js';
import { startCoherence } from '../../src/cache/coherence.js';
import { RedisTier } from '../../src/cache/redisTier.js';
import { TieredCache } from '../../src/cache/tieredCache.js';
import { LocalDoorbell } from '../../src/changelog/doorbell.js';
import { ChangeLog } from '../../src/changelog/log.js';
import { loadConfig } from '../../src/config/config.js';
import { Role } from '../../src/domain/roles.js';
import { createUser } from '../../src/domain/users/createUser.js';
import type { UserRow } from '../../src/store/schema.js';
import type { Store } from '../../src/store/store.js';
import { openConcord } from '../../src/server.js';
import type { Backend } from '../support/backends.js';
import { freshDatabase } from '../support/backends.js';

export const REDIS_URL = process.env.CONCORD_TEST_REDIS ?? 'redis://127.0.0.1:6379';

/** One node's cache over a shared store: L1, optionally L2 under `scope`, and its log consumer. */
export interface CacheNode {
  cache: TieredCache;
  metrics: CacheMetrics;
  registry: Registry;
  coherence: Coherence | null;
  /** Starts the node's log consumer from `from` (default: the head now). */
  follow(from?: number): Promise<void>;
  close(): Promise<void>;
}

/** A store with a change log and an owner, for cache tests. */
export interface CacheWorld {
  store: Store;
  log: ChangeLog;
  /** Commits as another node would: this process's caches learn of them only from the log. */
  otherLog: ChangeLog;
  realmId: number;
  owner: UserRow;
  /** A scope for L2 keys unique to this world (a prefix of our own in the shared Redis). */
  scope: string;
  node(opts?: { l2?: boolean; redisUrl?: string; maxBytes?: number; pollMs?: number }): CacheNode;
  addUser(name: string): Promise<UserRow>;
  close(): Promise<void>;
}

const logger = pino({ level: 'silent' });

export async function cacheWorld(backend: Backend): Promise<CacheWorld> {
  const db = await freshDatabase(backend);
  const config = loadConfig([], {
    CONCORD_DATA_DIR: db.dataDir,
    CONCORD_SECRET: 'test-secret-test-secret-test-secret-0123',
    CONCORD_PASSWORD_HASH_COST: '10',
    ...(db.databaseUrl ? { DATABASE_URL: db.databaseUrl } : {}),
  });
  const { store, log, realmId, doorbell } = await openConcord(config, logger);
  // Another process's view of the same database: its commits reach this process only through the
  // log (no in-process commit listener), as a second node's would.
  const otherLog = new ChangeLog(store, new LocalDoorbell());
  const add = async (name: string, role: number = Role.MEMBER) =>
    (
      await log.run(realmId, (ctx) =>
        createUser(
          ctx,
          null,
          { email: `${randomUUID()}@example.com`, fullName: name, role, password: null },
          { passwordHashCost: 10 },
        ),
      )
    ).value;
  const owner = await add('Olga Owner', Role.OWNER);
  const scope = `${store.scope}:${randomUUID()}`;
  const nodes: CacheNode[] = [];
  return {
    store,
    log,
    otherLog,
    realmId,
    owner,
    scope,
    addUser: (name) => add(name),
    node(opts = {}) {
      const registry = new Registry();
      const metrics = createCacheMetrics(registry);
      const l2 = opts.l2 ? new RedisTier(opts.redisUrl ?? REDIS_URL, scope, metrics, logger) : undefined;
      const cache = new TieredCache({ maxBytes: opts.maxBytes ?? 16 * 1024 * 1024, l2, metrics });
      const node: CacheNode = {
        cache,
        metrics,
        registry,
        coherence: null,
        async follow(from) {
          if (l2) await l2.start();
          node.coherence = startCoherence({
            log,
            cache,
            from: from ?? (await log.head()),
            pollMs: opts.pollMs ?? 100,
            metrics,
            logger,
          });
        },
        async close() {
          await node.coherence?.stop();
          await cache.settled();
          await l2?.close();
        },
      };
      nodes.push(node);
      return node;
    },
    async close() {
      for (const n of nodes) await n.close();
      await doorbell.close();
      await store.close();
      await db.cleanup();
    },
  };
}

/** The value of a counter or gauge (with labels) in a registry. */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}) {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const hit = values.find((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want));
  return hit?.value ?? 0;
}

/** What the shared Redis holds for `key` under `scope` (value JSON, its seq, the tombstone). */
export async function l2Raw(
  scope: string,
  key: string,
): Promise<{ s: string | null; v: string | null; i: string | null }> {
  const { createHash } = await import('node:crypto');
  const redis = new Redis(REDIS_URL, { lazyConnect: true });
  await redis.connect();
  try {
    const prefix = `concord:${createHash('sha256').update(scope).digest('hex').slice(0, 16)}:c:`;
    const [s, v, i] = await redis.hmget(prefix + key, 's', 'v', 'i');
    return { s: s ?? null, v: v ?? null, i: i ?? null };
  } finally {
    redis.disconnect();
  }
}

/** A promise with its resolve function exposed. */
export function gate<T = void>(): { promise: Promise<T>; open(value: T): void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => (open = resolve));
  return { promise, open };
}
