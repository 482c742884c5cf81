import type { Logger } from 'pino';
import type { FailureLimiter } from '../auth/rateLimit.js';
import type { ChangeLog } from '../changelog/log.js';
import type { Config } from '../config/config.js';
import type { Metrics } from '../observability/metrics.js';
import type { Store } from '../store/store.js';
import type { QueueService } from '../events/queueService.js';
import type { UserRow } from '../store/schema.js';
import type { CachedReads } from '../cache/reads.js';
import type { TieredCache } from '../cache/tieredCache.js';
import type { Readiness } from '../readiness/readiness.js';
import type { PresentContext } from './presenters/user.js';

/** Everything the HTTP edge needs, passed in once when the app is built. */
export interface AppContext {
  config: Config;
  store: Store;
  log: ChangeLog;
  realmId: number;
  realmName: string;
  limiter: FailureLimiter;
  present: PresentContext;
  metrics: Metrics;
  logger: Logger;
  queues: QueueService;
  readiness: Readiness;
  cache: TieredCache;
  /** The hot reads, through the cache. */
  reads: CachedReads;
  /** The log position this node's reads reflect at least (its cache consumer's cursor). */
  cursor(): number;
  /** Resolves once this node has applied the change at `seq`. */
  waitForPosition(seq: number): Promise<void>;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated user, set by the `requireUser` pre-handler. */
    user: UserRow;
    /** Whether the path serves workspace data (set on arrival; see app.ts). */
    servesData: boolean;
  }
}
