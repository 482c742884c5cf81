import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role } from '../../src/domain/roles.js';
import { createUser } from '../../src/domain/users/createUser.js';
import { updateUser } from '../../src/domain/users/updateUser.js';
import { CheckpointWriter } from '../../src/events/checkpoints.js';
import { EventQueue } from '../../src/events/queue.js';
import { openPostgresStore } from '../../src/store/postgres.js';
import type { Backend } from '../support/backends.js';
import { backends, freshDatabase } from '../support/backends.js';
import type { Core } from './harness.js';
import { drain, openCore, registerClient } from './harness.js';

/**
 * The batched writer of queue positions, on every backend (one UPDATE ... FROM (VALUES ...) for
 * both): acknowledged queues move their checkpoint, unacknowledged ones keep theirs, and a
 * checkpoint never moves back whoever writes it.
 */
describe.each(backends())('queue checkpoints on %s', (backend: Backend) => {
  let core: Core;
  let cleanup = async () => {};
  beforeAll(async () => {
    if (backend === 'postgres') {
      const db = await freshDatabase('postgres');
      core = await openCore(await openPostgresStore(db.databaseUrl!, 2));
      cleanup = db.cleanup;
    } else core = await openCore();
  });
  afterAll(async () => {
    await core?.close();
    await cleanup();
  });

  const row = (id: string) =>
    core.store.db.selectFrom('event_queues').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

  it('writes acknowledged positions in one batch, keeps unacknowledged ones, and never moves back', async () => {
    const created = await core.run((ctx) =>
      createUser(
        ctx,
        null,
        { email: 'c@example.com', fullName: 'C', role: Role.OWNER },
        { passwordHashCost: 10 },
      ),
    );
    if (created instanceof Error) throw created;
    const user = created;
    const clients = [];
    for (let i = 0; i < 3; i++) clients.push(await registerClient(core, user.id));
    const before = await row(clients[0]!.queueId);
    await core.run((ctx) => updateUser(ctx, user, user.id, { fullName: 'C renamed' }));
    // Two clients receive and acknowledge (drain polls again with the last id); one does not poll.
    for (const c of clients.slice(0, 2)) expect(await drain(core, c)).toBe('ok');
    const writer = new CheckpointWriter(core.store, pino({ level: 'silent' }));
    await core.queues.close(); // writes what is pending
    const [a, b, idle] = await Promise.all(clients.map((c) => row(c.queueId)));
    for (const r of [a!, b!]) {
      expect(Number(r.checkpoint_seq)).toBeGreaterThan(Number(before.checkpoint_seq));
      expect(Number(r.checkpoint_event_id)).toBe(clients[0]!.lastEventId + 1);
    }
    expect(Number(idle!.checkpoint_seq)).toBe(Number(before.checkpoint_seq));

    // A copy of the first queue at its registration checkpoint (a stale node) writes: the row
    // keeps the newer checkpoint, and only last access moves.
    const stale = new EventQueue(
      clients[0]!.queueId,
      user.id,
      core.realmId,
      { eventTypes: null, includeSubscribers: true },
      {
        seq: Number(before.checkpoint_seq),
        nextEventId: Number(before.checkpoint_event_id),
        view: JSON.parse(before.checkpoint_view),
      },
      { externalUrl: 'http://concord.test', host: 'concord.test' },
    );
    stale.written = { seq: -1, nextEventId: -1 };
    const later = Number(a!.last_access_at) + 1000;
    writer.touch(stale, later);
    await writer.flush();
    const after = await row(clients[0]!.queueId);
    expect(Number(after.checkpoint_seq)).toBe(Number(a!.checkpoint_seq));
    expect(Number(after.checkpoint_event_id)).toBe(Number(a!.checkpoint_event_id));
    expect(after.checkpoint_view).toBe(a!.checkpoint_view);
    expect(Number(after.last_access_at)).toBe(later);
    await writer.close();
  });
});
