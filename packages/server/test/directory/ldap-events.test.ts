import { Attribute, Change } from 'ldapts';
import { normalizeState } from '@concord/client';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { TestClient } from '../events/harness.js';
import { drain, freshState, registerClient } from '../events/harness.js';
import { backends } from '../support/backends.js';
import type { Slapd } from '../support/slapd.js';
import { generateDirectory, startSlapd } from '../support/slapd.js';
import type { DirectoryCore } from './fixture.js';
import { addSource, linkedUsers, openDirectoryCore, syncOnce } from './fixture.js';

/**
 * Clients registered before and during a sync (between its pages) apply the events they receive
 * with the client package's reducer and must end equal to a fresh register: every page's
 * realm_user and peer_add / peer_remove events are there, for every viewer.
 */
describe.each(backends())('events of an LDAP sync on %s', (backend) => {
  let slapd: Slapd;
  let core: DirectoryCore;
  let sourceId: number;
  const dir = generateDirectory(1_500, 30);

  beforeAll(async () => {
    [slapd, core] = await Promise.all([startSlapd(dir), openDirectoryCore(backend)]);
    sourceId = await addSource(core, {
      connector: 'ldap',
      settings: slapd.sourceSettings,
    });
  });
  afterAll(async () => {
    await core?.dispose();
    await slapd?.stop();
  });

  async function syncWithClients(extraViewers: () => Promise<number[]>, pageSize: number) {
    const clients: TestClient[] = [await registerClient(core, core.ownerId)];
    const kinds = new Map<string, number>();
    const count = (c: TestClient) => {
      for (const e of c.received) {
        const deactivation =
          e.type === 'realm_user' && (e.person as { is_active?: boolean })?.is_active === false;
        const key = deactivation
          ? 'realm_user/deactivated'
          : e.type === 'subscription' || e.type === 'realm_user'
            ? `${e.type}/${String(e.op)}`
            : e.type;
        kinds.set(key, (kinds.get(key) ?? 0) + 1);
      }
    };
    const outcome = await syncOnce(
      core,
      { sourceId },
      {
        pageSize,
        async onCommit(n) {
          for (const c of clients) expect(await drain(core, c)).toBe('ok');
          // New viewers join between pages, each seeing a different prefix of the sync.
          if (n % 3 === 1)
            for (const id of await extraViewers()) clients.push(await registerClient(core, id));
        },
      },
    );
    expect(outcome.error).toBeUndefined();
    expect(outcome.commands).toBeGreaterThan(5);
    for (const c of clients) {
      expect(await drain(core, c)).toBe('ok');
      expect(normalizeState(c.state), `user ${c.userId}`).toEqual(await freshState(core, c.userId));
      count(c);
    }
    return { clients, kinds };
  }

  /** One not-yet-watching active user of the source, from the end of the directory. */
  let cursor = dir.users.length - 1;
  async function nextViewer(): Promise<number[]> {
    const linked = await linkedUsers(core.store.db, sourceId);
    for (; cursor >= 0; cursor -= 37) {
      const u = linked.get(dir.users[cursor]!.uid);
      if (u?.is_active === 1) {
        cursor -= 37;
        return [u.id];
      }
    }
    return [];
  }

  test('first sync: clients registered before and between pages end equal to a fresh register', async () => {
    const { clients, kinds } = await syncWithClients(nextViewer, 200);
    expect(clients.length).toBeGreaterThan(2);
    expect(kinds.get('realm_user/add')).toBeGreaterThan(0);
    expect(kinds.get('subscription/peer_add')).toBeGreaterThan(0);
  });

  test('second sync with renames, removals and moves: realm_user updates, peer_add and peer_remove keep clients equal', async () => {
    const client = await slapd.client();
    for (let i = 0; i < 20; i++)
      await client.modify(slapd.userDn(dir.users[i * 13]!.uid), [
        new Change({
          operation: 'replace',
          modification: new Attribute({ type: 'cn', values: [`Renamed ${i}`] }),
        }),
      ]);
    for (const u of dir.users.slice(100, 110)) await client.del(slapd.userDn(u.uid));
    const from = dir.groups[3]!;
    const to = dir.groups[4]!;
    const moved = from.members
      .slice(0, 15)
      .filter((m) => !dir.users.slice(100, 110).some((u) => u.uid === m));
    await client.modify(slapd.groupDn(from.cn), [
      new Change({
        operation: 'delete',
        modification: new Attribute({ type: 'member', values: moved.map(slapd.userDn) }),
      }),
    ]);
    const joined = moved.filter((m) => !to.members.includes(m));
    await client.modify(slapd.groupDn(to.cn), [
      new Change({
        operation: 'add',
        modification: new Attribute({ type: 'member', values: joined.map(slapd.userDn) }),
      }),
    ]);
    await client.unbind();

    // Viewers include members of the channels that change, so peer events reach subscribers too.
    const linked = await linkedUsers(core.store.db, sourceId);
    const watchers = [from.members.at(-1)!, to.members.at(-1)!].map((uid) => linked.get(uid)!.id);
    const { kinds } = await syncWithClients(async () => watchers.splice(0, 1), 4);
    expect(kinds.get('realm_user/update')).toBeGreaterThan(0);
    expect(kinds.get('realm_user/deactivated')).toBeGreaterThan(0);
    expect(kinds.get('subscription/peer_add')).toBeGreaterThan(0);
    expect(kinds.get('subscription/peer_remove')).toBeGreaterThan(0);
  });
});
