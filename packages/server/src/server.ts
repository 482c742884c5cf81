import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import type { Logger } from 'pino';
import { FailureLimiter } from './auth/rateLimit.js';
import type { Doorbell } from './changelog/doorbell.js';
import { LocalDoorbell, PostgresDoorbell, notifyChannel } from './changelog/doorbell.js';
import { ChangeLog } from './changelog/log.js';
import { LogTail } from './changelog/tail.js';
import { QueueService } from './events/queueService.js';
import type { Config } from './config/config.js';
import { generateSecret } from './config/config.js';
import { ensureRealm } from './domain/realm/ensureRealm.js';
import { buildApp } from './http/app.js';
import type { AppContext } from './http/context.js';
import { createMetrics } from './observability/metrics.js';
import { openStore } from './store/open.js';
import { createCacheMetrics } from './cache/cacheMetrics.js';
import { startCoherence } from './cache/coherence.js';
import { CachedReads } from './cache/reads.js';
import { RedisTier } from './cache/redisTier.js';
import { TieredCache } from './cache/tieredCache.js';
import { startNodeRegistry } from './readiness/nodeRegistry.js';
import { Readiness } from './readiness/readiness.js';
import { watchTail } from './readiness/stallWatch.js';
import { warmCache } from './readiness/warmup.js';
import type { Store } from './store/store.js';
import type { JobHandler } from './jobs/job.js';
import { NOOP_JOB, noopJob } from './jobs/runner/noop.js';
import { startDirectorySchedules } from './jobs/directory/scheduler.js';
import { DIRECTORY_SYNC_JOB, directorySyncJob } from './jobs/directory/sync.js';
import { runnerOptions } from './jobs/runner/options.js';
import { JobRunner } from './jobs/runner/runner.js';

/** A running Concord node. */
export interface Concord {
  config: Config;
  store: Store;
  log: ChangeLog;
  http: FastifyInstance;
  realmId: number;
  logger: Logger;
  /** Base URL the node listens on. */
  url: string;
  readiness: Readiness;
  /** Resolves when the node serves data requests; rejects if warm-up failed. */
  ready: Promise<void>;
  /** The node's job runner (after warm-up). */
  readonly jobs: JobRunner;
  close(): Promise<void>;
}

/** The server secret: configured, or (embedded mode) generated once into the data dir. */
function resolveSecret(config: Config): string {
  if (config.secret) return config.secret;
  const file = join(config.dataDir, 'secret.key');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(config.dataDir, { recursive: true });
  const secret = generateSecret();
  writeFileSync(file, secret, { mode: 0o600 });
  return secret;
}

/** Opens the store, creates the realm if needed, starts the log consumers and returns the pieces. */
export async function openConcord(
  config: Config,
  logger: Logger = pino({ level: config.logLevel }),
  doorbellDropShare = 0,
) {
  const store = await openStore(config);
  let doorbell: Doorbell;
  if (config.databaseUrl) {
    const pgBell = new PostgresDoorbell(
      config.databaseUrl,
      notifyChannel(store.scope),
      logger,
      doorbellDropShare,
    );
    await pgBell.start();
    doorbell = pgBell;
  } else {
    doorbell = new LocalDoorbell();
  }
  const log = new ChangeLog(store, doorbell);
  const realmId = await ensureRealm(log, config.realmName);
  return { store, doorbell, log, realmId };
}

/** Options of {@link startConcord}. */
export interface StartOptions {
  logger?: Logger;
  /** Resolve once the node is ready (default), or as soon as the port is open. */
  waitReady?: boolean;
  /** Called once the HTTP port is open, before warm-up. */
  onListening?(url: string): void;
  /** Job handlers by kind, registered before the runner starts claiming. */
  jobHandlers?: Record<string, JobHandler<never>>;
}

/**
 * Starts a node. The HTTP port opens first, answering `/livez`, `/readyz` (503 with progress) and
 * the status stream, and 503 with `Retry-After` on every data endpoint; then the node migrates,
 * loads its caches at one log position, catches up from it to the head, and only then serves data.
 */
export async function startConcord(config: Config, opts: StartOptions = {}): Promise<Concord> {
  const logger = opts.logger ?? pino({ level: config.logLevel });
  resolveSecret(config);
  const metrics = createMetrics();
  const cacheMetrics = createCacheMetrics(metrics.registry);
  const readiness = new Readiness(config.nodeId, metrics.registry, logger, {
    slowWarmupMs: config.warmupWarnSeconds * 1000,
  });
  const external = new URL(config.externalUrl);
  const present = { externalUrl: config.externalUrl, host: external.hostname };
  // The data half of the context is filled in by warm-up; until then the readiness gate in the
  // HTTP edge answers 503 before any route could touch it.
  const ctx = {
    config,
    limiter: new FailureLimiter(config.loginRateLimit, config.loginRateWindowSeconds * 1000),
    present,
    metrics,
    logger,
    readiness,
  } as AppContext;
  const http = await buildApp(ctx);
  await http.listen({ host: config.host, port: config.port });
  const address = http.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  // Port 0 (tests): the URL clients use is only known once listening.
  if (config.externalUrl.endsWith(':0')) ctx.present.externalUrl = url;
  opts.onListening?.(url);

  // What to stop on close, in reverse order of starting: `first` before the HTTP server closes
  // (what holds requests open: long-polls, timers), `last` after it (consumers, connections).
  const first: (() => Promise<void> | void)[] = [];
  const stops: (() => Promise<void> | void)[] = [];
  let jobs: JobRunner | undefined;
  const warmUp = async () => {
    readiness.enter('migrating');
    const { store, doorbell, log, realmId } = await openConcord(config, logger, config.faultDoorbellDrop);
    stops.push(
      () => store.close(),
      () => doorbell.close(),
    );
    const realm = await store.db
      .selectFrom('realms')
      .select('name')
      .where('id', '=', realmId)
      .executeTakeFirstOrThrow();

    readiness.enter('loading');
    const l2 = config.redisUrl
      ? new RedisTier(config.redisUrl, store.scope, cacheMetrics, logger)
      : undefined;
    if (l2) {
      await l2.start();
      stops.push(() => l2.close());
    }
    const cache = new TieredCache({ maxBytes: config.cacheMaxBytes, l2, metrics: cacheMetrics });
    const from = await warmCache(store, cache, realmId, readiness);

    readiness.enter('catching-up');
    const coherence = startCoherence({
      log,
      cache,
      from,
      pollMs: config.changelogPollMs,
      metrics: cacheMetrics,
      logger,
      onLag: (lag, cursor, head) => {
        metrics.consumerLag.labels('cache').set(lag);
        metrics.consumerCursor.labels('cache').set(cursor);
        metrics.changelogHead.set(head);
        readiness.position(cursor, head);
      },
    });
    stops.push(
      () => coherence.stop(),
      () => cache.settled(),
    );
    await coherence.tail.catchUp();

    const reads = new CachedReads(store, cache, realmId, () => coherence.tail.cursor);
    const queues = new QueueService(
      store,
      log,
      realmId,
      present,
      { idleTimeoutMs: config.eventQueueIdleSeconds * 1000, longpollSeconds: config.eventLongpollSeconds },
      logger,
      { cache: reads, onSnapshot: (source) => metrics.registerSnapshots.labels(source).inc() },
    );
    // The node's events tail: reads each change once and hands it to every queue on this node.
    const start = await log.head();
    queues.startAt(start);
    const follower = new LogTail(log, {
      name: 'events',
      from: start,
      pollMs: config.changelogPollMs,
      apply: (changes) => queues.onChanges(changes),
      reset: ({ oldest }) => {
        queues.onReset(oldest - 1);
        return oldest - 1;
      },
      onLag: (lag, cursor) => {
        metrics.consumerLag.labels('events').set(lag);
        metrics.consumerCursor.labels('events').set(cursor);
      },
      onError: (err) => logger.warn({ err }, 'change-log follower failed; retrying on the next ring'),
    });
    follower.start();
    stops.push(() => follower.stop());
    first.push(() => queues.close());

    const prune = async () => {
      try {
        const n = await log.prune({
          maxAgeMs: config.changelogRetentionSeconds * 1000,
          maxCount: config.changelogRetentionCount,
        });
        metrics.changesPruned.inc(n);
      } catch (err) {
        logger.warn({ err }, 'change-log retention failed');
      }
    };
    await prune();
    const pruneTimer = setInterval(() => {
      void prune();
      queues.sweepExpired().catch((err) => logger.warn({ err }, 'expiring event queues failed'));
    }, 60_000);
    pruneTimer.unref();
    first.push(() => clearInterval(pruneTimer));

    Object.assign(ctx, {
      store,
      log,
      realmId,
      realmName: realm.name,
      queues,
      cache,
      reads,
      cursor: () => coherence.tail.cursor,
      waitForPosition: (seq: number) => coherence.tail.waitFor(seq),
    } satisfies Partial<AppContext>);
    const nodes = startNodeRegistry({ store, config, url, readiness, cache, tail: coherence.tail, logger });
    first.push(() => nodes.stop());
    const stopWatch = watchTail({
      tail: coherence.tail,
      log,
      readiness,
      stallMs: config.stallSeconds * 1000,
      logger,
    });
    first.push(stopWatch);
    jobs = new JobRunner({ log, realmId, options: runnerOptions(config), metrics: metrics.jobs, logger });
    jobs.register(NOOP_JOB, noopJob);
    jobs.register(DIRECTORY_SYNC_JOB, directorySyncJob({ store }));
    first.push(
      startDirectorySchedules(log, realmId, jobs.options, 15_000, (err) =>
        logger.warn({ err }, 'directory schedules: tick failed'),
      ),
    );
    for (const [kind, handler] of Object.entries(opts.jobHandlers ?? {})) jobs.register(kind, handler);
    jobs.start();
    first.push(() => jobs!.stop());
    readiness.ready();
    return { store, log, realmId };
  };
  const warming = warmUp();
  warming.catch((err: unknown) => {
    const reason = err instanceof Error ? err.message : String(err);
    readiness.failed(reason);
    logger.error({ err }, 'warm-up failed');
  });

  const close = async () => {
    await warming.catch(() => {});
    // Graceful, but bounded: a client holding a keep-alive connection with a request in flight
    // must not keep the node from stopping.
    for (const stop of [...first].reverse()) await stop();
    const force = setTimeout(() => http.server.closeAllConnections(), 5_000);
    await http.close();
    clearTimeout(force);
    for (const stop of [...stops].reverse()) await stop();
  };

  const node: Concord = {
    config,
    get store() {
      return ctx.store;
    },
    get log() {
      return ctx.log;
    },
    get realmId() {
      return ctx.realmId;
    },
    http,
    logger,
    url,
    readiness,
    ready: warming.then(() => undefined),
    get jobs() {
      if (!jobs) throw new Error('the job runner starts with warm-up');
      return jobs;
    },
    close,
  };
  if (opts.waitReady === false) return node;
  try {
    await warming;
  } catch (err) {
    await close().catch(() => {});
    throw err;
  }
  return node;
}
