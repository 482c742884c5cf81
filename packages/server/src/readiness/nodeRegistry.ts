import type { Logger } from 'pino';
import type { TieredCache } from '../cache/tieredCache.js';
import type { LogTail } from '../changelog/tail.js';
import type { Config } from '../config/config.js';
import type { Store } from '../store/store.js';
import type { Readiness } from './readiness.js';

/** How often a node reports itself; a report older than three periods marks the node as gone. */
export const REPORT_EVERY_MS = 2000;

/** One node as the cluster status endpoint shows it. */
export interface NodeReport {
  node: string;
  url: string;
  started_at: number;
  updated_at: number;
  /** False when the node has not reported for three periods (stopped or unreachable). */
  alive: boolean;
  status: string;
  phase: string;
  reason: string | null;
  cursor: number | null;
  head: number | null;
  lag: number | null;
  cache: ReturnType<TieredCache['stats']>;
}

/**
 * Writes this node's report (readiness, cursor, lag, cache statistics) to `concord_nodes` now and
 * every {@link REPORT_EVERY_MS}, and removes it on stop. Best effort: a failed write is retried on
 * the next period and never affects requests.
 */
export function startNodeRegistry(opts: {
  store: Store;
  config: Config;
  url: string;
  readiness: Readiness;
  cache: TieredCache;
  tail: LogTail;
  logger: Logger;
}): { stop(): Promise<void> } {
  const { store, config, readiness, cache, tail } = opts;
  const startedAt = Date.now();
  const report = async () => {
    const status = readiness.status();
    const body = {
      status: status.status,
      phase: status.phase,
      reason: status.reason,
      cursor: tail.cursor,
      head: Math.max(tail.head, tail.cursor),
      cache: cache.stats(),
    };
    const now = Date.now();
    const row = { url: opts.url, updated_at: now, report: JSON.stringify(body) };
    await store.db
      .insertInto('concord_nodes')
      .values({ node_id: config.nodeId, started_at: startedAt, ...row })
      .onConflict((oc) => oc.column('node_id').doUpdateSet({ ...row, started_at: startedAt }))
      .execute();
  };
  const tick = () => report().catch((err: unknown) => opts.logger.debug({ err }, 'node report failed'));
  void tick();
  const timer = setInterval(() => void tick(), REPORT_EVERY_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await store.db
        .deleteFrom('concord_nodes')
        .where('node_id', '=', config.nodeId)
        .execute()
        .catch(() => {});
    },
  };
}

/** Every node that has reported, newest first, with its lag computed against the newest head. */
export async function listNodes(store: Store, logHead: number): Promise<NodeReport[]> {
  const rows = await store.db.selectFrom('concord_nodes').selectAll().orderBy('node_id').execute();
  const now = Date.now();
  return rows.map((r) => {
    const rep = JSON.parse(r.report) as Omit<
      NodeReport,
      'node' | 'url' | 'started_at' | 'updated_at' | 'alive' | 'lag'
    >;
    return {
      node: r.node_id,
      url: r.url,
      started_at: Number(r.started_at),
      updated_at: Number(r.updated_at),
      alive: now - Number(r.updated_at) < 3 * REPORT_EVERY_MS,
      ...rep,
      lag: rep.cursor === null ? null : Math.max(0, logHead - rep.cursor),
    };
  });
}
