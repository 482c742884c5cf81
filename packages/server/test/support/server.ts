import pino from 'pino';
import type { Config } from '../../src/config/config.js';
import { loadConfig } from '../../src/config/config.js';
import { Role } from '../../src/domain/roles.js';
import { createUser } from '../../src/domain/users/createUser.js';
import type { Concord } from '../../src/server.js';
import { startConcord } from '../../src/server.js';
import type { Backend } from './backends.js';
import { freshDatabase } from './backends.js';
import { zulipContract } from './openapi.js';

/** A user's credentials for HTTP Basic auth. */
export interface Credentials {
  id: number;
  email: string;
  apiKey: string;
  password: string;
}

/** A Concord node on port 0 over a fresh database, with an owner, for one test file. */
export interface TestServer {
  backend: Backend;
  server: Concord;
  url: string;
  owner: Credentials;
  config: Config;
  /** Creates a user directly through the command layer (fast; no HTTP). */
  createUser(opts: {
    email?: string | null;
    fullName?: string;
    role?: number;
    password?: string;
  }): Promise<Credentials>;
  /** `fetch` against the server with Basic auth as `who` (or no auth). */
  api(
    method: string,
    path: string,
    opts?: { as?: Credentials | null; form?: Record<string, unknown>; query?: Record<string, unknown> },
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- bodies are checked by assertions and the OpenAPI validator
  ): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

const encode = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

/** Starts a test server on `backend` with a low password-hash cost (tests hash many passwords). */
export async function startTestServer(
  backend: Backend,
  overrides: Record<string, string> = {},
  /** `pgPort`: reach PostgreSQL through this port (a test's TCP proxy) instead of the server's. */
  opts: { pgPort?: number } = {},
): Promise<TestServer> {
  const db = await freshDatabase(backend);
  if (db.databaseUrl && opts.pgPort) {
    const url = new URL(db.databaseUrl);
    url.port = String(opts.pgPort);
    db.databaseUrl = url.toString();
  }
  const env: Record<string, string> = {
    CONCORD_PORT: '0',
    CONCORD_DATA_DIR: db.dataDir,
    CONCORD_LOG_LEVEL: 'warn',
    CONCORD_PASSWORD_HASH_COST: '10',
    CONCORD_CHANGELOG_POLL_MS: '200',
    CONCORD_SECRET: 'test-secret-test-secret-test-secret-0123',
    ...(db.databaseUrl ? { DATABASE_URL: db.databaseUrl } : {}),
    ...overrides,
  };
  const config = loadConfig([], env);
  const server = await startConcord(config, { logger: pino({ level: 'warn' }) });
  let counter = 0;

  const createTestUser: TestServer['createUser'] = async (opts) => {
    counter += 1;
    const password = opts.password ?? `pw-${counter}-${Math.random()}`;
    const email = opts.email === undefined ? `user${counter}-${Date.now()}@example.com` : opts.email;
    const { value } = await server.log.run(server.realmId, (ctx) =>
      createUser(
        ctx,
        null,
        {
          email,
          fullName: opts.fullName ?? `Test User ${counter}`,
          role: opts.role ?? Role.MEMBER,
          password,
        },
        { passwordHashCost: config.passwordHashCost },
      ),
    );
    const host = new URL(server.url).hostname;
    return {
      id: value.id,
      email: value.delivery_email ?? `user${value.id}@${host}`,
      apiKey: value.api_key,
      password,
    };
  };

  const owner = await createTestUser({
    email: 'owner@example.com',
    fullName: 'Olga Owner',
    role: Role.OWNER,
    password: 'owner-password',
  });

  const api: TestServer['api'] = async (method, path, opts = {}) => {
    const headers: Record<string, string> = {};
    const who = opts.as === undefined ? owner : opts.as;
    if (who) headers.authorization = `Basic ${Buffer.from(`${who.email}:${who.apiKey}`).toString('base64')}`;
    const qs = opts.query
      ? `?${new URLSearchParams(Object.entries(opts.query).map(([k, v]): [string, string] => [k, encode(v)]))}`
      : '';
    let body: string | undefined;
    if (opts.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(
        Object.entries(opts.form).map(([k, v]): [string, string] => [k, encode(v)]),
      ).toString();
    }
    const res = await fetch(`${server.url}/api/v1${path}${qs}`, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON: returned as text */
    }
    // Every answer of a Zulip endpoint, success or error, must match Zulip's OpenAPI description.
    zulipContract().validateResponse(method, path, res.status, parsed);
    return { status: res.status, body: parsed };
  };

  return {
    backend,
    server,
    url: server.url,
    owner,
    config,
    createUser: createTestUser,
    api,
    async close() {
      await server.close();
      await db.cleanup();
    },
  };
}
