import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import SqliteDatabase from 'better-sqlite3';
import pino from 'pino';
import { loadConfig } from '../../src/config/config.js';
import { Role } from '../../src/domain/roles.js';
import { openConcord } from '../../src/server.js';

/** What {@link seedBigWorkspace} made: the sizes, and the owner's credentials. */
export interface BigWorkspace {
  users: number;
  streams: number;
  subscriptions: number;
  owner: { id: number; email: string; apiKey: string };
  /** A channel and how many active members it has (to check the members endpoint). */
  sample: { streamId: number; members: number };
}

/**
 * Creates an embedded (SQLite) workspace in `dataDir` with `users` users (the first an owner),
 * `streams` channels and `perUser` subscriptions per user, by bulk insert: fast enough for 100,000
 * users and 1,000,000 subscriptions in a few seconds. The schema and realm come from a normal start
 * (migrations, ensureRealm); the rows are inserted without change-log entries, as an imported
 * database would be.
 */
export async function seedBigWorkspace(
  dataDir: string,
  opts: { users: number; streams: number; perUser: number },
): Promise<BigWorkspace> {
  // In a child process: the bulk insert is synchronous for seconds, and a test worker that blocks
  // that long misses its RPC deadline with the test runner ("Timeout calling onTaskUpdate").
  const { stdout } = await run(process.execPath, ['--import', 'tsx', self, dataDir, JSON.stringify(opts)], {
    maxBuffer: 1024 * 1024,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as BigWorkspace;
}

const run = promisify(execFile);
const self = fileURLToPath(import.meta.url);

if (process.argv[1] === self) {
  const [dataDir, opts] = process.argv.slice(2);
  const ws = await seedHere(
    dataDir!,
    JSON.parse(opts!) as { users: number; streams: number; perUser: number },
  );
  console.log(JSON.stringify(ws));
}

async function seedHere(
  dataDir: string,
  opts: { users: number; streams: number; perUser: number },
): Promise<BigWorkspace> {
  const config = loadConfig([], { CONCORD_DATA_DIR: dataDir, CONCORD_PASSWORD_HASH_COST: '10' });
  const opened = await openConcord(config, pino({ level: 'silent' }));
  const realmId = opened.realmId;
  await opened.doorbell.close();
  await opened.store.close();

  const db = new SqliteDatabase(join(dataDir, 'concord.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  const now = Date.now();
  const apiKey = randomBytes(24).toString('base64url').slice(0, 32);
  const insertUser = db.prepare(
    `INSERT INTO users (realm_id, delivery_email, email_key, full_name, role, is_active, is_bot,
       password_hash, api_key, avatar_version, timezone, date_joined)
     VALUES (?, ?, ?, ?, ?, 1, 0, NULL, ?, 1, '', ?)`,
  );
  const insertStream = db.prepare(
    `INSERT INTO streams (realm_id, name, name_key, description, invite_only,
       history_public_to_subscribers, is_archived, creator_id, date_created)
     VALUES (?, ?, ?, '', 0, 1, 0, NULL, ?)`,
  );
  const insertSub = db.prepare(
    `INSERT INTO subscriptions (realm_id, user_id, stream_id, color, is_muted, pin_to_top, date_created)
     VALUES (?, ?, ?, '#76ce90', 0, 0, ?)`,
  );
  let ownerId = 0;
  const streamIds: number[] = [];
  const members = new Map<number, number>();
  db.transaction(() => {
    for (let i = 0; i < opts.users; i++) {
      const email = `person${i}@example.com`;
      const id = Number(
        insertUser.run(
          realmId,
          email,
          email,
          `Person ${i}`,
          i === 0 ? Role.OWNER : Role.MEMBER,
          i === 0 ? apiKey : randomKey(i),
          now,
        ).lastInsertRowid,
      );
      if (i === 0) ownerId = id;
    }
    for (let s = 0; s < opts.streams; s++)
      streamIds.push(Number(insertStream.run(realmId, `channel ${s}`, `channel ${s}`, now).lastInsertRowid));
    // Each user in `perUser` distinct channels, spread evenly.
    for (let u = 0; u < opts.users; u++) {
      for (let k = 0; k < opts.perUser; k++) {
        const streamId = streamIds[(u * 7 + k * 13) % streamIds.length]!;
        insertSub.run(realmId, ownerId + u, streamId, now);
        members.set(streamId, (members.get(streamId) ?? 0) + 1);
      }
    }
  })();
  db.close();
  return {
    users: opts.users,
    streams: opts.streams,
    subscriptions: opts.users * opts.perUser,
    owner: { id: ownerId, email: 'person0@example.com', apiKey },
    sample: { streamId: streamIds[0]!, members: members.get(streamIds[0]!) ?? 0 },
  };
}

function randomKey(i: number): string {
  return `k${i.toString(36).padStart(31, '0')}`;
}
