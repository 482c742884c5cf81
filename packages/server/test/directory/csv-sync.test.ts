import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readCsv } from '../../src/jobs/directory/csv.js';
import { DirectorySourceError } from '../../src/jobs/directory/snapshot.js';
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

const header = 'external_id,email,full_name,channels';

describe('CSV format', () => {
  test('malformed rows are skipped with their line number and reason; the rest is read', () => {
    const csv = [
      header,
      'a1,ann@example.org,Ann,eng;ops', // 2 ok
      'a2,not-an-email,Bob,eng', // 3 bad email
      ',x@example.org,No Id,', // 4 no id
      'a3,,   ,eng', // 5 blank name
      'a4,dan@example.org,Dan', // 6 three columns
      'a1,ann2@example.org,Ann Again,', // 7 duplicate id
      'a5,ANN@example.org,Other Ann,', // 8 duplicate email
      `a6,eve@example.org,Eve,${'x'.repeat(61)}`, // 9 channel name too long
      'a7,,"Quoted, Name",ops', // 10 ok, no email
      'a8,"broken,Name,ops', // 11.. unterminated quote swallows the rest
    ].join('\n');
    const snap = readCsv(csv);
    expect(snap.users.map((u) => u.externalId)).toEqual(['a1', 'a7']);
    expect(snap.users[1]).toEqual({ externalId: 'a7', email: null, fullName: 'Quoted, Name' });
    expect(snap.groups).toEqual([
      { name: 'eng', memberExternalIds: ['a1'] },
      { name: 'ops', memberExternalIds: ['a1', 'a7'] },
    ]);
    const rows = snap.rowErrors.map((e) => e.row);
    expect(rows.slice(0, 7)).toEqual(['line 3', 'line 4', 'line 5', 'line 6', 'line 7', 'line 8', 'line 9']);
    expect(snap.rowErrors[0]!.message).toMatch(/not-an-email/);
    expect(snap.rowErrors[1]!.message).toMatch(/external_id is empty/);
    expect(snap.rowErrors[2]!.message).toMatch(/full_name/);
    expect(snap.rowErrors[3]!.message).toMatch(/expected 4 columns, got 3/);
    expect(snap.rowErrors[4]!.message).toMatch(/earlier line/);
    expect(snap.rowErrors[5]!.message).toMatch(/ANN@example.org/);
    expect(snap.rowErrors[6]!.message).toMatch(/longer than 60/);
    expect(snap.rowErrors.length).toBe(8);
    expect(snap.rowErrors[7]!.message).toMatch(/quote/i);
    // Skipped rows' users are protected from deactivation and membership changes.
    expect(snap.unreadableIds.sort()).toEqual(['a2', 'a3', 'a4', 'a5', 'a6']);
  });

  test('a file without the documented header fails as a whole', () => {
    expect(() => readCsv('id,mail,name\nx,y,z')).toThrow(DirectorySourceError);
    expect(() => readCsv('id,mail,name\nx,y,z')).toThrow(
      /header must be 'external_id,email,full_name,channels'/,
    );
    expect(() => readCsv('')).toThrow(/header/);
  });
});

describe.each(backends())('CSV sync on %s', (backend) => {
  let core: DirectoryCore;
  let sourceId: number;
  beforeAll(async () => {
    core = await openDirectoryCore(backend);
    sourceId = await addSource(core, { connector: 'csv', settings: {}, name: 'hr.csv' });
  });
  afterAll(() => core?.dispose());

  const good = Array.from(
    { length: 300 },
    (_, i) => `e${i},p${i}@example.org,Person ${i},${i % 2 ? 'odd' : 'even'};all`,
  );

  test('good rows apply, bad rows are reported and change nothing; the same file again appends nothing', async () => {
    const csv = [
      header,
      ...good.slice(0, 150),
      'bad1,nope,Bad One,all',
      'bad2,,,all',
      ...good.slice(150),
    ].join('\r\n');
    const before = await core.log.head();
    const outcome = await syncOnce(core, { sourceId, csv }, { pageSize: 100 });
    expect(outcome.error).toBeUndefined();
    expect(outcome.rowErrors).toEqual([
      { row: 'line 152', message: expect.stringMatching(/'nope' is not a valid e-mail address/) },
      { row: 'line 153', message: expect.stringMatching(/full_name.*blank/) },
    ]);
    expect(lastCounts(outcome)).toEqual({
      created: 300,
      updated: 0,
      deactivated: 0,
      subscribed: 600,
      unsubscribed: 0,
      skipped: 2,
    });
    const linked = await linkedUsers(core.store.db, sourceId);
    expect(linked.size).toBe(300);
    expect(linked.has('bad1') || linked.has('bad2')).toBe(false);
    const members = await channelMembers(core.store.db, sourceId);
    expect(members.get('all')?.length).toBe(300);
    expect(members.get('odd')?.length).toBe(150);
    expect(
      await core.store.db.selectFrom('users').select('id').where('full_name', '=', 'Bad One').execute(),
    ).toEqual([]);
    expect((await changesSince(core, before)).get('user.created')).toBe(300);

    const head = await core.log.head();
    const again = await syncOnce(core, { sourceId, csv });
    expect(again.error).toBeUndefined();
    expect(again.commands).toBe(0);
    expect(await core.log.head()).toBe(head);
  });

  test('a row that becomes malformed leaves its user alone; a user who left is deactivated', async () => {
    // e0 now has a bad e-mail (unreadable: kept as is), e1 is gone (deactivated), e2 moves channel.
    const rows = good.slice(3);
    const csv = [header, 'e0,broken@,Person 0,even;all', 'e2,p2@example.org,Person Two,odd', ...rows].join(
      '\n',
    );
    const before = await core.log.head();
    const outcome = await syncOnce(core, { sourceId, csv });
    expect(outcome.error).toBeUndefined();
    expect(outcome.rowErrors).toEqual([{ row: 'line 2', message: expect.stringMatching(/broken@/) }]);
    expect(lastCounts(outcome)).toEqual({
      created: 0,
      updated: 1,
      deactivated: 1,
      subscribed: 1,
      unsubscribed: 2,
      skipped: 1,
    });
    expect(Object.fromEntries(await changesSince(core, before))).toEqual({
      'user.updated': 1,
      'user.deactivated': 1,
      'subscription.added': 1,
      'subscription.removed': 2,
    });
    const linked = await linkedUsers(core.store.db, sourceId);
    expect(linked.get('e0')?.is_active).toBe(1);
    expect(linked.get('e1')?.is_active).toBe(0);
    const members = await channelMembers(core.store.db, sourceId);
    expect(members.get('even')).toContain('e0');
    expect(members.get('all')).toContain('e0');
    expect(members.get('odd')).toContain('e2');
    expect(members.get('all')).not.toContain('e2');
  });

  test('a bad header fails the sync before any write', async () => {
    const head = await core.log.head();
    const outcome = await syncOnce(core, { sourceId, csv: 'name,mail\nx,y' });
    expect(outcome.error).toBeInstanceOf(DirectorySourceError);
    expect((outcome.error as Error).message).toMatch(/header/);
    expect(outcome.commands).toBe(0);
    expect(await core.log.head()).toBe(head);
  });

  test('a CSV sync without a file fails clearly', async () => {
    const outcome = await syncOnce(core, { sourceId });
    expect((outcome.error as Error).message).toBe('a CSV source syncs only with an uploaded file');
  });
});
