import type { ChangeLog } from '../../changelog/log.js';

/**
 * Returns the id of the default realm, creating it on first start. Concord serves one realm;
 * every row carries its id so that more can be added later.
 */
export async function ensureRealm(log: ChangeLog, name: string): Promise<number> {
  const existing = await log.store.db.selectFrom('realms').select('id').orderBy('id').executeTakeFirst();
  if (existing) return existing.id;
  const { value } = await log.run(0, async (ctx) => {
    const again = await ctx.trx.selectFrom('realms').select('id').orderBy('id').executeTakeFirst();
    if (again) return again.id;
    const { id } = await ctx.trx
      .insertInto('realms')
      .values({ string_id: '', name, date_created: ctx.now })
      .returning('id')
      .executeTakeFirstOrThrow();
    ctx.record({
      kind: 'realm.created',
      payload: { realmId: id, name },
      cacheKeys: [],
      audience: { scope: 'realm' },
    });
    return id;
  });
  return value;
}
