import { join } from 'node:path';
import type { Config } from '../config/config.js';
import { openPostgresStore } from './postgres.js';
import { openSqliteStore } from './sqlite.js';
import type { Store } from './store.js';

/** Opens the store the configuration selects: PostgreSQL in cluster mode, SQLite otherwise. */
export function openStore(
  config: Pick<Config, 'databaseUrl' | 'dataDir' | 'databasePoolSize'> &
    Partial<Pick<Config, 'databaseIdleInTransactionSeconds'>>,
): Promise<Store> {
  const idle = config.databaseIdleInTransactionSeconds;
  return config.databaseUrl
    ? openPostgresStore(config.databaseUrl, config.databasePoolSize, {
        idleInTransactionMs: idle === undefined ? undefined : idle * 1000,
      })
    : openSqliteStore(join(config.dataDir, 'concord.sqlite'));
}
