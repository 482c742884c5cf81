import fc from 'fast-check';
import { normalizeState } from '@concord/client';
import type { ZulipEvent } from '@concord/client';
import { describe, expect, it } from 'vitest';
import { Role } from '../../src/domain/roles.js';
import { archiveStream } from '../../src/domain/streams/archiveStream.js';
import { updateStream } from '../../src/domain/streams/updateStream.js';
import { subscribe } from '../../src/domain/subscriptions/subscribe.js';
import { unsubscribe } from '../../src/domain/subscriptions/unsubscribe.js';
import { createUser } from '../../src/domain/users/createUser.js';
import { deactivateUser } from '../../src/domain/users/deactivateUser.js';
import { reactivateUser } from '../../src/domain/users/reactivateUser.js';
import { clearAvatar } from '../../src/domain/users/clearAvatar.js';
import { setAvatar } from '../../src/domain/users/setAvatar.js';
import { updateUser } from '../../src/domain/users/updateUser.js';
import type { Actor } from '../../src/domain/roles.js';
import type { Core, TestClient } from './harness.js';
import { drain, freshState, openCore, registerClient } from './harness.js';

/** Runs in CI: at least 1,000 generated command sequences (override with CONCORD_EQUIVALENCE_RUNS). */
const RUNS = Number(process.env.CONCORD_EQUIVALENCE_RUNS ?? 1000);

const roles = [Role.OWNER, Role.ADMINISTRATOR, Role.MEMBER, Role.GUEST];
const pick = <T>(xs: T[], i: number): T => xs[i % xs.length]!;

/** One step a random actor (or the test itself, for `register`) takes. Indices pick among existing users and channels. */
type Step =
  | { kind: 'createUser'; role: number }
  | { kind: 'rename'; actor: number; target: number; name: string }
  | { kind: 'avatar'; actor: number; target: number; clear: boolean }
  | { kind: 'role'; actor: number; target: number; role: number }
  | { kind: 'deactivate'; actor: number; target: number }
  | { kind: 'reactivate'; actor: number; target: number }
  | { kind: 'createStream'; actor: number; private: boolean; name: string; others: number[] }
  | { kind: 'renameStream'; actor: number; stream: number; name: string }
  | { kind: 'privacy'; actor: number; stream: number; private: boolean }
  | { kind: 'archive'; actor: number; stream: number }
  | { kind: 'subscribe'; actor: number; stream: number; principals: number[] }
  | { kind: 'unsubscribe'; actor: number; stream: number; principals: number[] }
  | {
      kind: 'register';
      user: number;
      archived: boolean;
      /** The node's cache catches up first (as it usually has), so the register can read it. */
      cacheFresh: boolean;
    }
  | { kind: 'cacheCatchUp' };

const idx = fc.nat(50);
const name = fc.constantFrom('alpha', 'beta', 'gamma', 'Delta', 'épsilon', 'zeta');
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('createUser' as const), role: fc.constantFrom(...roles) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('rename' as const), actor: idx, target: idx, name }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('avatar' as const),
      actor: idx,
      target: idx,
      clear: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('role' as const),
      actor: idx,
      target: idx,
      role: fc.constantFrom(...roles),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deactivate' as const), actor: idx, target: idx }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reactivate' as const), actor: idx, target: idx }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('createStream' as const),
      actor: idx,
      private: fc.boolean(),
      name,
      others: fc.array(idx, { maxLength: 3 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('renameStream' as const), actor: idx, stream: idx, name }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('privacy' as const),
      actor: idx,
      stream: idx,
      private: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('archive' as const), actor: idx, stream: idx }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('subscribe' as const),
      actor: idx,
      stream: idx,
      principals: fc.array(idx, { maxLength: 3 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('unsubscribe' as const),
      actor: idx,
      stream: idx,
      principals: fc.array(idx, { maxLength: 2 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('register' as const),
      user: idx,
      archived: fc.boolean(),
      cacheFresh: fc.boolean(),
    }),
  },
  // The node's cache applies the changes so far (until then it lags, as behind a slow consumer).
  { weight: 2, arbitrary: fc.constant({ kind: 'cacheCatchUp' as const }) },
);

interface World {
  core: Core;
  users: number[];
  streams: { id: number; name: string }[];
  clients: TestClient[];
  counter: number;
}

async function actor(w: World, i: number): Promise<Actor> {
  const id = pick(w.users, i);
  return w.core.store.db
    .selectFrom('users')
    .select(['id', 'realm_id', 'role', 'is_active'])
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
}

/**
 * Applies one step; actors are read before the command's transaction (on SQLite the store has one
 * connection, which the transaction holds); permission and validation errors are expected outcomes, like a real client's. */
async function apply(w: World, s: Step): Promise<void> {
  const { core } = w;
  switch (s.kind) {
    case 'createUser': {
      const user = await core.run((ctx) =>
        createUser(
          ctx,
          null,
          { email: `u${w.counter++}@example.com`, fullName: `User ${w.counter}`, role: s.role },
          { passwordHashCost: 10 },
        ),
      );
      if (!(user instanceof Error)) w.users.push(user.id);
      return;
    }
    case 'rename': {
      const a = await actor(w, s.actor);
      await core.run((ctx) =>
        updateUser(ctx, a, pick(w.users, s.target), { fullName: `${s.name} ${w.counter++}` }),
      );
      return;
    }
    case 'avatar': {
      // The command stores what the route checked; the bytes do not matter to events.
      const a = await actor(w, s.actor);
      const target = pick(w.users, s.target);
      const avatar = { content: Buffer.from(`avatar ${w.counter++}`), format: 'png', sha256: '0'.repeat(64) };
      await core.run((ctx) => (s.clear ? clearAvatar(ctx, a, target) : setAvatar(ctx, a, target, avatar)));
      return;
    }
    case 'role': {
      const a = await actor(w, s.actor);
      await core.run((ctx) => updateUser(ctx, a, pick(w.users, s.target), { role: s.role }));
      return;
    }
    case 'deactivate': {
      const a = await actor(w, s.actor);
      await core.run((ctx) => deactivateUser(ctx, a, pick(w.users, s.target)));
      return;
    }
    case 'reactivate': {
      const a = await actor(w, s.actor);
      await core.run((ctx) => reactivateUser(ctx, a, pick(w.users, s.target)));
      return;
    }
    case 'createStream': {
      const streamName = `${s.name}-${w.counter++}`;
      const a = await actor(w, s.actor);
      const result = await core.run((ctx) =>
        subscribe(ctx, a, {
          streams: [{ name: streamName }],
          principals: [a.id, ...s.others.map((o) => pick(w.users, o))],
          inviteOnly: s.private,
        }),
      );
      if (!(result instanceof Error))
        for (const c of result.created) w.streams.push({ id: c.id, name: c.name });
      return;
    }
    case 'renameStream': {
      if (w.streams.length === 0) return;
      const st = pick(w.streams, s.stream);
      const newName = `${s.name}-${w.counter++}`;
      const a = await actor(w, s.actor);
      const r = await core.run((ctx) => updateStream(ctx, a, st.id, { newName }));
      if (!(r instanceof Error)) st.name = newName;
      return;
    }
    case 'privacy': {
      if (w.streams.length === 0) return;
      const st = pick(w.streams, s.stream);
      const a = await actor(w, s.actor);
      await core.run((ctx) => updateStream(ctx, a, st.id, { isPrivate: s.private }));
      return;
    }
    case 'archive': {
      if (w.streams.length === 0) return;
      const st = pick(w.streams, s.stream);
      const a = await actor(w, s.actor);
      const r = await core.run((ctx) => archiveStream(ctx, a, st.id));
      if (!(r instanceof Error)) w.streams.splice(w.streams.indexOf(st), 1);
      return;
    }
    case 'subscribe': {
      if (w.streams.length === 0) return;
      const st = pick(w.streams, s.stream);
      const principals = s.principals.map((p) => pick(w.users, p));
      const a = await actor(w, s.actor);
      await core.run((ctx) =>
        subscribe(ctx, a, { streams: [{ name: st.name }], principals, authorizationErrorsFatal: true }),
      );
      return;
    }
    case 'unsubscribe': {
      if (w.streams.length === 0) return;
      const st = pick(w.streams, s.stream);
      const principals = s.principals.map((p) => pick(w.users, p));
      const a = await actor(w, s.actor);
      await core.run((ctx) => unsubscribe(ctx, a, { streamNames: [st.name], principals }));
      return;
    }
    case 'register': {
      const id = pick(w.users, s.user);
      const row = await core.store.db
        .selectFrom('users')
        .select('is_active')
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      // One client per user and capability: with `archived_channels` and without.
      if (row.is_active && !w.clients.some((c) => c.userId === id && c.archivedChannels === s.archived)) {
        if (s.cacheFresh) await core.catchUpCache();
        w.clients.push(await registerClient(core, id, s.archived));
      }
      return;
    }
    case 'cacheCatchUp':
      await core.catchUpCache();
      return;
  }
}

/** The channels an event speaks of. */
function streamsIn(e: ZulipEvent): number[] {
  const ids: unknown[] = [];
  if (Array.isArray(e.stream_ids)) ids.push(...e.stream_ids);
  if (typeof e.stream_id === 'number') ids.push(e.stream_id);
  for (const list of [e.streams, e.subscriptions])
    if (Array.isArray(list)) ids.push(...list.map((x: { stream_id: number }) => x.stream_id));
  return ids.filter((x): x is number => typeof x === 'number');
}

/**
 * No event about a channel the recipient cannot see: apart from the events that reveal a channel
 * (`stream` `create`, `subscription` `add`), every channel an event names is already in the
 * recipient's store, which the step checks equal what the recipient may see.
 */
function assertVisible(client: TestClient, e: ZulipEvent): void {
  const reveals = (e.type === 'stream' && e.op === 'create') || (e.type === 'subscription' && e.op === 'add');
  if (reveals) return;
  for (const id of streamsIn(e)) {
    expect(
      client.state.streams.has(id),
      `user ${client.userId} got ${JSON.stringify(e)} about channel ${id} it cannot see`,
    ).toBe(true);
  }
}

/** Where the runs' registers read their state. */
const sources = { cache: 0, database: 0 };

/** Which archive-related events the runs produced, to show both capabilities were exercised. */
const seen: Record<string, boolean> = {};

/** After every step: each client drains its queue and must equal a fresh register of its user. */
async function check(w: World, step: number): Promise<void> {
  for (const client of [...w.clients]) {
    const outcome = await drain(w.core, client, (e) => {
      assertVisible(client, e);
      if (e.type === 'stream' && (e.op === 'delete' || e.property === 'is_archived'))
        seen[`${client.archivedChannels ? 'with' : 'without'} archived_channels: stream ${String(e.op)}`] =
          true;
    });
    const active = await w.core.store.db
      .selectFrom('users')
      .select('is_active')
      .where('id', '=', client.userId)
      .executeTakeFirstOrThrow();
    if (outcome === 'ended') {
      w.clients.splice(w.clients.indexOf(client), 1);
      // The real client re-registers; a deactivated user cannot.
      if (active.is_active)
        w.clients.push(await registerClient(w.core, client.userId, client.archivedChannels));
      continue;
    }
    if (!active.is_active) continue;
    const expected = await freshState(w.core, client.userId, client.archivedChannels);
    const actual = normalizeState(client.state);
    if (JSON.stringify(actual) !== JSON.stringify(expected)) {
      expect(
        actual,
        `user ${client.userId} after step ${step}; events: ${JSON.stringify(client.received.slice(-12))}`,
      ).toEqual(expected);
    }
  }
}

describe('snapshot + events = fresh snapshot', () => {
  it(`holds for every user over ${RUNS} random command sequences`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 1, maxLength: 25 }),
        fc.boolean(),
        async (steps, cached) => {
          // Half the runs register from the node's cache (at its consumer's cursor), half from the
          // database; fresh registers, the expected state, always read the database.
          // In-memory SQLite answers synchronously, so a run never reaches the event loop on its own;
          // without this the whole property (about a minute) starves the test worker's own RPC to
          // Vitest, which then fails the suite with "Timeout calling onTaskUpdate".
          await new Promise((resolve) => setImmediate(resolve));
          const core = await openCore(undefined, { cache: cached });
          try {
            const w: World = { core, users: [], streams: [], clients: [], counter: 0 };
            // Every run starts with an owner, an administrator, a member and a guest, all registered.
            for (const role of roles) await apply(w, { kind: 'createUser', role });
            // Two of them with the `archived_channels` capability, two without.
            for (let i = 0; i < w.users.length; i++)
              await apply(w, { kind: 'register', user: i, archived: i % 2 === 1, cacheFresh: i < 2 });
            for (const [i, s] of steps.entries()) {
              await apply(w, s);
              await check(w, i);
            }
          } finally {
            sources.cache += core.snapshotSources.cache;
            sources.database += core.snapshotSources.database;
            await core.close();
          }
        },
      ),
      { numRuns: RUNS, seed: process.env.CONCORD_SEED ? Number(process.env.CONCORD_SEED) : undefined },
    );
    // Both sources of register state were exercised, the cache in most cached runs' registers.
    expect(sources.cache).toBeGreaterThan(0);
    expect(sources.database).toBeGreaterThan(0);
    console.log(`registers: ${sources.cache} from the cache, ${sources.database} from the database`);
    // Archiving reached clients of both kinds: an update for those that show archived channels, a
    // delete for the others.
    if (RUNS >= 100)
      expect(seen).toMatchObject({
        'with archived_channels: stream update': true,
        'without archived_channels: stream delete': true,
      });
  }, 600_000);
});
