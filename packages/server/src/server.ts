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
import type { Store } from './store/store.js';

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
export async function openConcord(config: Config, logger: Logger = pino({ level: config.logLevel })) {
  const store = await openStore(config);
  let doorbell: Doorbell;
  if (config.databaseUrl) {
    const pgBell = new PostgresDoorbell(config.databaseUrl, notifyChannel(store.scope), logger);
    await pgBell.start();
    doorbell = pgBell;
  } else {
    doorbell = new LocalDoorbell();
  }
  const log = new ChangeLog(store, doorbell);
  const realmId = await ensureRealm(log, config.realmName);
  return { store, doorbell, log, realmId };
}

/** Starts a node: store, change log, consumers, retention and the HTTP server. */
export async function startConcord(config: Config, opts: { logger?: Logger } = {}): Promise<Concord> {
  const logger = opts.logger ?? pino({ level: config.logLevel });
  resolveSecret(config);
  const { store, doorbell, log, realmId } = await openConcord(config, logger);
  const metrics = createMetrics();
  const realm = await store.db
    .selectFrom('realms')
    .select('name')
    .where('id', '=', realmId)
    .executeTakeFirstOrThrow();

  const external = new URL(config.externalUrl);
  const present = { externalUrl: config.externalUrl, host: external.hostname };
  const queues = new QueueService(
    store,
    log,
    realmId,
    present,
    { idleTimeoutMs: config.eventQueueIdleSeconds * 1000, longpollSeconds: config.eventLongpollSeconds },
    logger,
  );

  // The node's events tail: reads each change once and hands it to every queue on this node. Its
  // cursor and lag are what the status page and readiness report.
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
    onLag: (lag, cursor, head) => {
      metrics.consumerLag.labels('events').set(lag);
      metrics.consumerCursor.labels('events').set(cursor);
      metrics.changelogHead.set(head);
    },
    onError: (err) => logger.warn({ err }, 'change-log follower failed; retrying on the next ring'),
  });
  follower.start();

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

  const ctx: AppContext = {
    config,
    store,
    log,
    realmId,
    realmName: realm.name,
    limiter: new FailureLimiter(config.loginRateLimit, config.loginRateWindowSeconds * 1000),
    present,
    metrics,
    logger,
    queues,
  };
  const http = await buildApp(ctx);
  await http.listen({ host: config.host, port: config.port });
  const address = http.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  // Port 0 (tests): the URL clients use is only known once listening.
  if (config.externalUrl.endsWith(':0')) ctx.present.externalUrl = url;

  return {
    config,
    store,
    log,
    http,
    realmId,
    logger,
    url,
    async close() {
      clearInterval(pruneTimer);
      queues.close();
      // Graceful, but bounded: a client holding a keep-alive connection with a request in flight
      // must not keep the node from stopping.
      const force = setTimeout(() => http.server.closeAllConnections(), 5_000);
      await http.close();
      clearTimeout(force);
      await follower.stop();
      await doorbell.close();
      await store.close();
    },
  };
}
