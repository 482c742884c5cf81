import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { LdapSettings } from '../../src/jobs/directory/settings.js';
import { ldapSettingsSchema } from '../../src/jobs/directory/settings.js';
import { readLdap } from '../../src/jobs/directory/ldap.js';
import { DirectorySourceError } from '../../src/jobs/directory/snapshot.js';
import { backends } from '../support/backends.js';
import type { Slapd } from '../support/slapd.js';
import { generateDirectory, startSlapd } from '../support/slapd.js';
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

/** A TCP server on loopback that answers every connection with `behaviour`. */
async function fakeServer(
  behaviour: (socket: Socket) => void,
): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    behaviour(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `ldap://127.0.0.1:${port}`,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

const settings = (over: Partial<LdapSettings>): LdapSettings =>
  ldapSettingsSchema.parse({
    url: 'ldap://127.0.0.1:1',
    bind_dn: 'cn=admin,dc=concord,dc=test',
    bind_password: 'x',
    user_base_dn: 'ou=people,dc=concord,dc=test',
    group_base_dn: 'ou=groups,dc=concord,dc=test',
    connect_timeout_ms: 1_000,
    timeout_ms: 1_000,
    ...over,
  });

async function failure(promise: Promise<unknown>): Promise<DirectorySourceError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DirectorySourceError);
  return err as DirectorySourceError;
}

describe('LDAP connector failures are clear', () => {
  let slapd: Slapd;
  beforeAll(async () => {
    slapd = await startSlapd(generateDirectory(10, 2));
  });
  afterAll(() => slapd?.stop());

  test('an unreachable server', async () => {
    const url = `ldap://127.0.0.1:${await closedPort()}`;
    const err = await failure(readLdap(settings({ url })));
    expect([err.reason, err.message]).toEqual([
      'unreachable',
      `LDAP server ${url} is unreachable (ECONNREFUSED)`,
    ]);
  });

  test('bad credentials', async () => {
    const err = await failure(
      readLdap(settings({ url: slapd.url, bind_dn: slapd.adminDn, bind_password: 'wrong' })),
    );
    expect(err.reason).toBe('bad_credentials');
    expect(err.message).toBe(`LDAP bind as '${slapd.adminDn}' was refused: invalid credentials`);
  });

  test('a server that accepts and never answers times out within timeout_ms', async () => {
    const silent = await fakeServer(() => {});
    try {
      const started = Date.now();
      const err = await failure(readLdap(settings({ url: silent.url, timeout_ms: 300 })));
      expect(err.reason).toBe('timeout');
      expect(err.message).toMatch(new RegExp(`^LDAP (server|read from) ${silent.url}`));
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      await silent.close();
    }
  });

  test('a server that answers garbage', async () => {
    const garbage = await fakeServer((s) =>
      s.on('data', () => s.write(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\nnot ldap at all'))),
    );
    try {
      const err = await failure(readLdap(settings({ url: garbage.url, timeout_ms: 60_000 })));
      expect(err.reason).toBe('bad_response');
      expect(err.message).toMatch(`LDAP server ${garbage.url} gave an answer that is not LDAP`);
    } finally {
      await garbage.close();
    }
  });

  test('a server that closes the connection at once', async () => {
    const rude = await fakeServer((s) => s.on('data', () => s.destroy()));
    try {
      const err = await failure(readLdap(settings({ url: rude.url })));
      expect(['bad_response', 'unreachable']).toContain(err.reason);
      expect(err.message).toMatch(rude.url);
    } finally {
      await rude.close();
    }
  });
});

describe.each(backends())('failed and interrupted LDAP syncs on %s', (backend) => {
  let slapd: Slapd;
  let core: DirectoryCore;
  const dir = generateDirectory(1_000, 20);
  const ldap = () => ({ ...slapd.sourceSettings });
  beforeAll(async () => {
    [slapd, core] = await Promise.all([startSlapd(dir), openDirectoryCore(backend)]);
  });
  afterAll(async () => {
    await core?.dispose();
    await slapd?.stop();
  });

  test('an unreachable server or bad credentials fail the sync before any write', async () => {
    const down = await addSource(core, {
      name: 'down',
      connector: 'ldap',
      settings: { ...ldap(), url: `ldap://127.0.0.1:${await closedPort()}` },
    });
    const badPass = await addSource(core, {
      name: 'bad pass',
      connector: 'ldap',
      settings: { ...ldap(), bind_password: 'nope' },
    });
    const head = await core.log.head();
    for (const [sourceId, reason] of [
      [down, 'unreachable'],
      [badPass, 'bad_credentials'],
    ] as const) {
      const outcome = await syncOnce(core, { sourceId });
      expect((outcome.error as DirectorySourceError).reason).toBe(reason);
      expect(outcome.commands).toBe(0);
      expect(outcome.progress).toEqual([]);
    }
    expect(await core.log.head()).toBe(head);
  });

  test('a sync that fails or is canceled mid-way keeps exactly its committed pages; the next completes without repeating them', async () => {
    const sourceId = await addSource(core, { name: 'main', connector: 'ldap', settings: ldap() });
    const before = await core.log.head();
    // The third page throws after all its writes: it rolls back whole, the first two stay.
    const failed = await syncOnce(core, { sourceId }, { pageSize: 100, failCommand: 3 });
    expect((failed.error as Error).message).toBe('command 3 failed after its writes');
    expect(failed.commands).toBe(2);
    expect(Object.fromEntries(await changesSince(core, before))).toEqual({ 'user.created': 200 });
    expect((await linkedUsers(core.store.db, sourceId)).size).toBe(200);

    // Canceled (the run's signal aborts) after two more pages: it stops between pages.
    const cancel = new AbortController();
    const canceled = await syncOnce(
      core,
      { sourceId },
      {
        pageSize: 100,
        signal: cancel.signal,
        async onCommit(n) {
          if (n === 2) cancel.abort(new Error('canceled by an administrator'));
        },
      },
    );
    expect((canceled.error as Error).message).toBe('canceled by an administrator');
    expect(canceled.commands).toBe(2);
    expect((await linkedUsers(core.store.db, sourceId)).size).toBe(400);

    const done = await syncOnce(core, { sourceId }, { pageSize: 100 });
    expect(done.error).toBeUndefined();
    const memberships = dir.groups.reduce((n, g) => n + g.members.length, 0);
    expect(lastCounts(done)).toMatchObject({
      created: 600,
      subscribed: memberships,
      deactivated: 0,
      updated: 0,
    });
    // Over the three runs, each user and channel was created exactly once.
    const kinds = await changesSince(core, before);
    expect([kinds.get('user.created'), kinds.get('stream.created')]).toEqual([1_000, 20]);
    const linked = await linkedUsers(core.store.db, sourceId);
    expect(linked.size).toBe(1_000);
    for (const u of dir.users) expect(linked.get(u.uid)?.full_name).toBe(u.cn);
    const members = await channelMembers(core.store.db, sourceId);
    for (const g of dir.groups) expect(members.get(g.cn)).toEqual([...g.members].sort());
  });
});
