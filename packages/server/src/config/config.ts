import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

/** How a config field is read from the environment and the command line. */
interface FieldSource {
  env: string;
  flag: string;
  doc: string;
}

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/**
 * The one validated configuration object. Built once at start by {@link loadConfig} and passed
 * down explicitly; nothing below `main` reads `process.env`.
 */
export const configSchema = z
  .object({
    host: z.string().min(1).default('127.0.0.1'),
    port: int(0, 65535).default(9991),
    externalUrl: z.url({ protocol: /^https?$/ }).optional(),
    dataDir: z.string().min(1).default('./data'),
    databaseUrl: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
      .optional(),
    databasePoolSize: int(1, 200).default(10),
    databaseIdleInTransactionSeconds: z.coerce.number().min(0).max(3600).default(5),
    redisUrl: z
      .string()
      .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
      .optional(),
    secret: z.string().min(32, 'must be at least 32 characters').optional(),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    realmName: z.string().min(1).max(40).default('Concord'),
    nodeId: z.string().min(1).max(64).default(`${hostname()}-${process.pid}`),
    changelogRetentionSeconds: int(60, 10 * 365 * 86400).default(7 * 86400),
    changelogRetentionCount: int(1000, 1_000_000_000).default(1_000_000),
    changelogPollMs: int(10, 60_000).default(1000),
    loginRateLimit: int(1, 10_000).default(10),
    loginRateWindowSeconds: int(1, 86400).default(600),
    passwordHashCost: int(10, 20).default(15),
    eventQueueIdleSeconds: int(10, 7 * 86400).default(600),
    eventLongpollSeconds: int(2, 600).default(90),
    imageKeys: z
      .string()
      .regex(/^[^,]{32,}(,[^,]{32,})*$/, 'must be comma-separated keys of at least 32 characters each')
      .optional(),
    avatarMaxBytes: int(1024, 1024 * 1024 * 1024).default(1024 * 1024),
    imageMaxPixels: int(1, 1_000_000_000).default(25_000_000),
    imageSourceMemoryBytes: int(0, Number.MAX_SAFE_INTEGER).default(32 * 1024 * 1024),
    resultDir: z.string().min(1).optional(),
    resultMaxBytes: int(1024 * 1024, Number.MAX_SAFE_INTEGER).default(1024 * 1024 * 1024),
    resultMinFreeBytes: int(0, Number.MAX_SAFE_INTEGER).default(512 * 1024 * 1024),
    cacheMaxBytes: int(1024 * 1024, Number.MAX_SAFE_INTEGER).default(256 * 1024 * 1024),
    readWaitMs: int(0, 60_000).default(5000),
    warmupWarnSeconds: int(1, 86400).default(60),
    stallSeconds: int(1, 3600).default(30),
    faultDoorbellDrop: z.coerce.number().min(0).max(1).default(0),
    jobLeaseSeconds: z.coerce.number().min(0.05).max(3600).default(30),
    jobReaperSeconds: z.coerce.number().min(0.02).max(3600).default(10),
    jobConcurrency: int(0, 256).default(4),
    jobMaxAttempts: int(1, 100).default(5),
    jobDeadlineSeconds: z.coerce
      .number()
      .min(0.1)
      .max(7 * 86400)
      .default(3600),
    jobRetentionSeconds: int(60, 10 * 365 * 86400).default(7 * 86400),
    webDir: z
      .string()
      .min(1)
      .default(fileURLToPath(new URL('../../../web/dist', import.meta.url))),
  })
  .strict();

export type Config = z.infer<typeof configSchema> & {
  /** `cluster` when a PostgreSQL URL is configured, `embedded` (SQLite in `dataDir`) otherwise. */
  mode: 'embedded' | 'cluster';
  externalUrl: string;
};

/** Where each field comes from; also the source of the README's configuration table. */
export const configSources: Record<keyof z.infer<typeof configSchema>, FieldSource> = {
  host: { env: 'CONCORD_HOST', flag: '--host', doc: 'Interface to listen on.' },
  port: { env: 'CONCORD_PORT', flag: '--port', doc: 'TCP port (0 picks a free one).' },
  externalUrl: {
    env: 'CONCORD_EXTERNAL_URL',
    flag: '--external-url',
    doc: 'URL clients use to reach the server; defaults to http://host:port.',
  },
  dataDir: { env: 'CONCORD_DATA_DIR', flag: '--data-dir', doc: 'Directory for the SQLite file and secrets.' },
  databaseUrl: {
    env: 'DATABASE_URL',
    flag: '--database-url',
    doc: 'PostgreSQL URL; setting it selects cluster mode.',
  },
  databasePoolSize: {
    env: 'CONCORD_DATABASE_POOL_SIZE',
    flag: '--database-pool-size',
    doc: 'PostgreSQL pool size.',
  },
  databaseIdleInTransactionSeconds: {
    env: 'CONCORD_DATABASE_IDLE_IN_TRANSACTION_SECONDS',
    flag: '--database-idle-in-transaction-seconds',
    doc: 'PostgreSQL: a write transaction whose process sends nothing for this long (stopped or hung) is ended by the server, releasing the write lock; 0 never.',
  },
  redisUrl: {
    env: 'REDIS_URL',
    flag: '--redis-url',
    doc: 'Redis URL for the shared cache tier (cluster mode).',
  },
  secret: {
    env: 'CONCORD_SECRET',
    flag: '--secret',
    doc: 'Server secret (32+ chars). Embedded mode generates one in the data dir; cluster mode requires it.',
  },
  logLevel: {
    env: 'CONCORD_LOG_LEVEL',
    flag: '--log-level',
    doc: 'fatal, error, warn, info, debug, trace or silent.',
  },
  realmName: {
    env: 'CONCORD_REALM_NAME',
    flag: '--realm-name',
    doc: 'Name of the workspace created on first start.',
  },
  nodeId: {
    env: 'CONCORD_NODE_ID',
    flag: '--node-id',
    doc: 'Name of this node in cluster status and metrics.',
  },
  changelogRetentionSeconds: {
    env: 'CONCORD_CHANGELOG_RETENTION_SECONDS',
    flag: '--changelog-retention-seconds',
    doc: 'Change-log entries older than this are pruned.',
  },
  changelogRetentionCount: {
    env: 'CONCORD_CHANGELOG_RETENTION_COUNT',
    flag: '--changelog-retention-count',
    doc: 'At most this many change-log entries are kept.',
  },
  changelogPollMs: {
    env: 'CONCORD_CHANGELOG_POLL_MS',
    flag: '--changelog-poll-ms',
    doc: 'Safety-net poll of the change log when no doorbell rings.',
  },
  loginRateLimit: {
    env: 'CONCORD_LOGIN_RATE_LIMIT',
    flag: '--login-rate-limit',
    doc: 'Failed logins allowed per user and per client address within the window.',
  },
  loginRateWindowSeconds: {
    env: 'CONCORD_LOGIN_RATE_WINDOW_SECONDS',
    flag: '--login-rate-window-seconds',
    doc: 'Window of the failed-login limit.',
  },
  eventQueueIdleSeconds: {
    env: 'CONCORD_EVENT_QUEUE_IDLE_SECONDS',
    flag: '--event-queue-idle-seconds',
    doc: 'An event queue nobody polls for this long expires (BAD_EVENT_QUEUE_ID).',
  },
  imageKeys: {
    env: 'CONCORD_IMAGE_KEYS',
    flag: '--image-keys',
    doc: 'Comma-separated HMAC keys (32+ characters) for signed image transform URLs; all are accepted, so keys can be rotated.',
  },
  avatarMaxBytes: {
    env: 'CONCORD_AVATAR_MAX_BYTES',
    flag: '--avatar-max-bytes',
    doc: 'Largest accepted avatar upload, in bytes (larger uploads get 413 naming the limit).',
  },
  imageMaxPixels: {
    env: 'CONCORD_IMAGE_MAX_PIXELS',
    flag: '--image-max-pixels',
    doc: 'Largest pixel count (width × height) of an uploaded or transformed image; a decompression bomb is refused before decoding.',
  },
  imageSourceMemoryBytes: {
    env: 'CONCORD_IMAGE_SOURCE_MEMORY_BYTES',
    flag: '--image-source-memory-bytes',
    doc: 'Bytes of recently transformed image sources (uploaded originals) kept in memory, so that the other sizes of one avatar skip the database read (0: none).',
  },
  resultDir: {
    env: 'CONCORD_RESULT_DIR',
    flag: '--result-dir',
    doc: 'Directory of cached image results (resized avatars); defaults to <data dir>/results.',
  },
  resultMaxBytes: {
    env: 'CONCORD_RESULT_MAX_BYTES',
    flag: '--result-max-bytes',
    doc: 'The sweeper keeps cached image results under this total (least recently used first).',
  },
  resultMinFreeBytes: {
    env: 'CONCORD_RESULT_MIN_FREE_BYTES',
    flag: '--result-min-free-bytes',
    doc: 'The sweeper removes cached image results while free disk space is below this.',
  },
  cacheMaxBytes: {
    env: 'CONCORD_CACHE_MAX_BYTES',
    flag: '--cache-max-bytes',
    doc: 'Size bound of the in-process cache (L1), in bytes of the cached values’ JSON.',
  },
  readWaitMs: {
    env: 'CONCORD_READ_WAIT_MS',
    flag: '--read-wait-ms',
    doc: 'How long a read carrying X-Concord-Min-Position waits for this node to apply it before 503.',
  },
  warmupWarnSeconds: {
    env: 'CONCORD_WARMUP_WARN_SECONDS',
    flag: '--warmup-warn-seconds',
    doc: 'A warm-up longer than this logs a warning and sets concord_warmup_slow.',
  },
  stallSeconds: {
    env: 'CONCORD_STALL_SECONDS',
    flag: '--stall-seconds',
    doc: 'A cache consumer that has not advanced for this long while the log head moved makes the node unready.',
  },
  faultDoorbellDrop: {
    env: 'CONCORD_FAULT_DOORBELL_DROP',
    flag: '--fault-doorbell-drop',
    doc: 'Fault injection for tests: share (0-1) of cluster doorbell notifications this node ignores.',
  },
  jobLeaseSeconds: {
    env: 'CONCORD_JOB_LEASE_SECONDS',
    flag: '--job-lease-seconds',
    doc: 'Lease of a job attempt; heartbeats renew it. A worker that dies is noticed within lease + reaper interval.',
  },
  jobReaperSeconds: {
    env: 'CONCORD_JOB_REAPER_SECONDS',
    flag: '--job-reaper-seconds',
    doc: 'How often the reaper returns jobs with expired leases to the queue (or fails them).',
  },
  jobConcurrency: {
    env: 'CONCORD_JOB_CONCURRENCY',
    flag: '--job-concurrency',
    doc: 'Job attempts this node runs at once (0: this node runs no jobs, but still reaps).',
  },
  jobMaxAttempts: {
    env: 'CONCORD_JOB_MAX_ATTEMPTS',
    flag: '--job-max-attempts',
    doc: 'Attempts a job gets before it fails (retries back off exponentially from one lease).',
  },
  jobDeadlineSeconds: {
    env: 'CONCORD_JOB_DEADLINE_SECONDS',
    flag: '--job-deadline-seconds',
    doc: 'Hard bound on one job attempt; past it the attempt is aborted and loses its lease.',
  },
  jobRetentionSeconds: {
    env: 'CONCORD_JOB_RETENTION_SECONDS',
    flag: '--job-retention-seconds',
    doc: 'Finished jobs (and their runs) older than this are deleted; the last one of each directory source is kept.',
  },
  webDir: {
    env: 'CONCORD_WEB_DIR',
    flag: '--web-dir',
    doc: 'The built web UI served at / (packages/web/dist, built by npm start).',
  },
  eventLongpollSeconds: {
    env: 'CONCORD_EVENT_LONGPOLL_SECONDS',
    flag: '--event-longpoll-seconds',
    doc: 'Advertised long-poll timeout; the server sends heartbeats at 50-65% of it.',
  },
  passwordHashCost: {
    env: 'CONCORD_PASSWORD_HASH_COST',
    flag: '--password-hash-cost',
    doc: 'log2 of the scrypt cost N (15 = 32 MiB per hash).',
  },
};

/** Thrown when configuration is invalid; its message lists every problem, one per line. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/**
 * Builds the configuration from environment variables and `--flag value` / `--flag=value`
 * arguments (flags win). Throws {@link ConfigError} naming every bad field; never returns a
 * partially valid object.
 */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Config {
  const raw: Record<string, string> = {};
  const problems: string[] = [];
  const byFlag = new Map(Object.entries(configSources).map(([key, s]) => [s.flag, key]));
  for (const [key, source] of Object.entries(configSources)) {
    const value = env[source.env];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      problems.push(`unexpected argument "${arg}"`);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const key = byFlag.get(flag);
    if (!key) {
      problems.push(`unknown option ${flag}`);
      if (eq === -1 && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) i++;
      continue;
    }
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) problems.push(`${flag} needs a value`);
    else raw[key] = value;
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = String(issue.path[0] ?? '');
      const source = configSources[key as keyof typeof configSources];
      const name = source ? `${source.env} (${source.flag})` : key;
      problems.push(`${name}: ${issue.message}`);
    }
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const data = parsed.data;
  const mode = data.databaseUrl ? 'cluster' : 'embedded';
  if (mode === 'cluster' && !data.secret) {
    throw new ConfigError([
      'CONCORD_SECRET (--secret): required in cluster mode so that every node signs alike',
    ]);
  }
  const externalUrl = (data.externalUrl ?? `http://${data.host}:${data.port}`).replace(/\/+$/, '');
  return { ...data, mode, externalUrl };
}

/** A random secret of the strength {@link configSchema} requires. */
export function generateSecret(): string {
  return randomBytes(32).toString('base64url');
}
