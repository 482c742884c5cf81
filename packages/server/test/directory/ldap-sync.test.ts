import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Attribute, Change } from 'ldapts';
import type { Slapd, LdapDirectory } from '../support/slapd.js';
import { generateDirectory, startSlapd } from '../support/slapd.js';
import { backends } from '../support/backends.js';
import type { DirectoryCore } from './fixture.js';
import {
  addSource,
  changesSince,
  channelMembers,
  lastCounts,
  linkedUsers,
  openDirectoryCore,
  syncOnce,
} from './fixture.js';

const USERS = 10_000;
const GROUPS = 200;

/** What the database should hold for `dir`: external id → name/email, channel → member ids. */
function expected(dir: LdapDirectory) {
  return {
    users: new Map(dir.users.map((u) => [u.uid, { name: u.cn, email: u.mail }])),
    channels: new Map(dir.groups.map((g) => [g.cn, [...g.members].sort()])),
  };
}

async function assertMatches(core: DirectoryCore, sourceId: number, dir: LdapDirectory) {
  const want = expected(dir);
  const linked = await linkedUsers(core.store.db, sourceId);
  const active = [...linked.values()].filter((u) => u.is_active === 1);
  expect(active.length).toBe(want.users.size);
  for (const [uid, u] of want.users) {
    const got = linked.get(uid);
    expect(got, uid).toBeDefined();
    expect([got!.full_name, got!.delivery_email, got!.is_active]).toEqual([u.name, u.email, 1]);
  }
  const members = await channelMembers(core.store.db, sourceId);
  expect(members.size).toBe(want.channels.size);
  for (const [name, ids] of want.channels) expect(members.get(name), name).toEqual(ids);
}

describe.each(backends())('LDAP sync of 10,000 users and 200 groups on %s', (backend) => {
  let slapd: Slapd;
  let core: DirectoryCore;
  let sourceId: number;
  const dir = generateDirectory(USERS, GROUPS);

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

  test('the first sync imports every user and group; a second one with no change appends nothing', async () => {
    const before = await core.log.head();
    let t = Date.now();
    const first = await syncOnce(core, { sourceId });
    const firstMs = Date.now() - t;
    expect(first.error).toBeUndefined();
    expect(first.rowErrors).toEqual([]);
    const memberships = dir.groups.reduce((n, g) => n + g.members.length, 0);
    expect(lastCounts(first)).toEqual({
      created: USERS,
      updated: 0,
      deactivated: 0,
      subscribed: memberships,
      unsubscribed: 0,
      skipped: 0,
    });
    const last = first.progress.at(-1)!;
    expect(last.done).toBe(last.total);
    await assertMatches(core, sourceId, dir);
    const kinds = await changesSince(core, before);
    expect(Object.fromEntries(kinds)).toEqual({
      'user.created': USERS,
      'stream.created': GROUPS,
      'subscription.added': expect.any(Number),
    });

    const head = await core.log.head();
    t = Date.now();
    const second = await syncOnce(core, { sourceId });
    console.log(
      `${backend}: first sync ${firstMs} ms in ${first.commands} commands; idle sync ${Date.now() - t} ms`,
    );
    expect(second.error).toBeUndefined();
    expect(second.commands).toBe(0);
    expect(await core.log.head()).toBe(head);
  });

  test('a second sync after renames, removals and membership changes applies exactly the differences', async () => {
    const client = await slapd.client();
    const next: LdapDirectory = {
      users: dir.users.map((u) => ({ ...u })),
      groups: dir.groups.map((g) => ({ ...g, members: [...g.members] })),
    };
    // 50 renames.
    for (let i = 0; i < 50; i++) {
      const u = next.users[i * 97]!;
      u.cn = `Renamed ${i}`;
      await client.modify(slapd.userDn(u.uid), [
        new Change({ operation: 'replace', modification: new Attribute({ type: 'cn', values: [u.cn] }) }),
      ]);
    }
    // 30 removals (their memberships go with them).
    const removed = next.users.splice(5000, 30);
    const gone = new Set(removed.map((u) => u.uid));
    for (const u of removed) await client.del(slapd.userDn(u.uid));
    for (const g of next.groups) {
      const kept = g.members.filter((m) => !gone.has(m));
      if (kept.length !== g.members.length) {
        g.members = kept;
        await client.modify(slapd.groupDn(g.cn), [
          new Change({
            operation: 'replace',
            modification: new Attribute({ type: 'member', values: kept.map((m) => slapd.userDn(m)) }),
          }),
        ]);
      }
    }
    // 40 membership moves: out of group 1, into group 2.
    const moved = next.groups[1]!.members.slice(0, 40);
    next.groups[1]!.members = next.groups[1]!.members.slice(40);
    const joined = moved.filter((m) => !next.groups[2]!.members.includes(m));
    next.groups[2]!.members.push(...joined);
    await client.modify(slapd.groupDn(next.groups[1]!.cn), [
      new Change({
        operation: 'delete',
        modification: new Attribute({ type: 'member', values: moved.map((m) => slapd.userDn(m)) }),
      }),
    ]);
    await client.modify(slapd.groupDn(next.groups[2]!.cn), [
      new Change({
        operation: 'add',
        modification: new Attribute({ type: 'member', values: joined.map((m) => slapd.userDn(m)) }),
      }),
    ]);
    await client.unbind();

    const before = await core.log.head();
    const outcome = await syncOnce(core, { sourceId });
    expect(outcome.error).toBeUndefined();
    expect(lastCounts(outcome)).toEqual({
      created: 0,
      updated: 50,
      deactivated: 30,
      subscribed: joined.length,
      unsubscribed: 40,
      skipped: 0,
    });
    expect(Object.fromEntries(await changesSince(core, before))).toEqual({
      'user.updated': 50,
      'user.deactivated': 30,
      'subscription.added': 1,
      'subscription.removed': 1,
    });
    await assertMatches(core, sourceId, next);
    const linked = await linkedUsers(core.store.db, sourceId);
    for (const uid of gone) expect(linked.get(uid)?.is_active).toBe(0);
  });
});
