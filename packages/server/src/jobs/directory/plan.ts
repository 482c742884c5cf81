import type { Kysely } from 'kysely';
import { ConcordError } from '../../errors.js';
import { Role } from '../../domain/roles.js';
import { checkEmail, checkFullName, checkStreamName } from '../../domain/validation.js';
import type { Database } from '../../store/schema.js';
import type { DirectorySnapshot, DirectoryUser, SourceRowError } from './snapshot.js';

/** One difference between the source and the database, applied by a domain command. */
export type SyncOp =
  | { kind: 'create'; user: DirectoryUser }
  /** An existing, unlinked Concord user with the same e-mail becomes this external id's user. */
  | { kind: 'link'; externalId: string; userId: number }
  | { kind: 'rename'; userId: number; fullName: string }
  | { kind: 'reactivate'; userId: number }
  | { kind: 'deactivate'; userId: number }
  /** Maps a group to its channel, creating the channel when none has the name. */
  | { kind: 'group'; name: string }
  /** Members are external ids: users created by earlier pages have no id when the plan is made. */
  | { kind: 'subscribe'; group: string; externalIds: string[] }
  | { kind: 'unsubscribe'; group: string; streamId: number; userIds: number[] };

/** What a sync will do, in the order it must be done. */
export interface SyncPlan {
  ops: SyncOp[];
  rowErrors: SourceRowError[];
}

/** Work units of an op (one per user it touches): pages are bounded by this. */
export const opSize = (op: SyncOp): number =>
  op.kind === 'subscribe' ? op.externalIds.length : op.kind === 'unsubscribe' ? op.userIds.length : 1;

const MAX_MEMBERS_PER_OP = 500;
const why = (err: unknown): string => (err instanceof ConcordError ? err.message : String(err));

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Compares a snapshot with what the database holds for `sourceId` and lists exactly the
 * differences: a snapshot equal to the last one applied yields no ops. Memberships are managed
 * only for users the source lists and who stay active; users the source cannot vouch for (skipped
 * rows) are left untouched; the acting owner is never deactivated.
 */
export async function planSync(
  db: Kysely<Database>,
  realmId: number,
  source: { id: number; deactivateMissing: boolean },
  snapshot: DirectorySnapshot,
  actorId: number,
): Promise<SyncPlan> {
  const rowErrors = [...snapshot.rowErrors];
  const unreadable = new Set(snapshot.unreadableIds);
  const links = new Map(
    (
      await db
        .selectFrom('directory_links')
        .select(['external_id', 'user_id'])
        .where('source_id', '=', source.id)
        .execute()
    ).map((l) => [l.external_id, l.user_id]),
  );
  const linkedUsers = new Set(links.values());
  const users = new Map(
    (
      await db
        .selectFrom('users')
        .select(['id', 'email_key', 'full_name', 'is_active', 'role'])
        .where('realm_id', '=', realmId)
        .execute()
    ).map((u) => [u.id, u]),
  );
  const byEmail = new Map([...users.values()].filter((u) => u.email_key).map((u) => [u.email_key!, u]));

  const ops: SyncOp[] = [];
  const present = new Map<string, { userId: number | null; activeAfter: boolean }>();
  const claimedEmails = new Set<string>();
  for (const entry of snapshot.users) {
    const row = `${entry.externalId}`;
    if (present.has(entry.externalId)) {
      rowErrors.push({ row, message: 'external id listed twice; the first entry applies' });
      continue;
    }
    let fullName: string;
    let email: string | null;
    try {
      fullName = checkFullName(entry.fullName);
      email = entry.email === null ? null : checkEmail(entry.email);
    } catch (err) {
      rowErrors.push({ row, message: why(err) });
      unreadable.add(entry.externalId);
      continue;
    }
    const wantActive = entry.active !== false;
    const linked = links.get(entry.externalId);
    if (linked !== undefined && users.has(linked)) {
      const user = users.get(linked)!;
      if (user.full_name !== fullName) ops.push({ kind: 'rename', userId: linked, fullName });
      let active = user.is_active === 1;
      if (source.deactivateMissing && wantActive && !active) {
        ops.push({ kind: 'reactivate', userId: linked });
        active = true;
      } else if (source.deactivateMissing && !wantActive && active && linked !== actorId) {
        ops.push({ kind: 'deactivate', userId: linked });
        active = false;
      }
      present.set(entry.externalId, { userId: linked, activeAfter: active });
      continue;
    }
    const key = email?.toLowerCase() ?? null;
    if (key && claimedEmails.has(key)) {
      rowErrors.push({ row, message: `email '${email}' belongs to another entry of this source` });
      unreadable.add(entry.externalId);
      continue;
    }
    if (key) claimedEmails.add(key);
    const existing = key ? byEmail.get(key) : undefined;
    if (existing && linkedUsers.has(existing.id)) {
      rowErrors.push({ row, message: `email '${email}' belongs to a user linked to another entry` });
      unreadable.add(entry.externalId);
      continue;
    }
    if (existing) {
      ops.push({ kind: 'link', externalId: entry.externalId, userId: existing.id });
      if (existing.full_name !== fullName) ops.push({ kind: 'rename', userId: existing.id, fullName });
      present.set(entry.externalId, { userId: existing.id, activeAfter: existing.is_active === 1 });
      continue;
    }
    ops.push({ kind: 'create', user: { externalId: entry.externalId, email, fullName } });
    present.set(entry.externalId, { userId: null, activeAfter: wantActive });
  }

  if (source.deactivateMissing) {
    for (const [externalId, userId] of links) {
      const user = users.get(userId);
      if (present.has(externalId) || unreadable.has(externalId) || !user?.is_active) continue;
      if (userId === actorId || user.role === Role.OWNER) {
        rowErrors.push({
          row: externalId,
          message: 'left the source, but owners are not deactivated by a sync',
        });
        continue;
      }
      ops.push({ kind: 'deactivate', userId });
    }
  }

  ops.push(...(await planMemberships(db, realmId, source.id, snapshot, present, rowErrors)));
  return { ops, rowErrors };
}

async function planMemberships(
  db: Kysely<Database>,
  realmId: number,
  sourceId: number,
  snapshot: DirectorySnapshot,
  present: Map<string, { userId: number | null; activeAfter: boolean }>,
  rowErrors: SourceRowError[],
): Promise<SyncOp[]> {
  const ops: SyncOp[] = [];
  const mapped = await db
    .selectFrom('directory_groups')
    .innerJoin('streams', 'streams.id', 'directory_groups.stream_id')
    .select(['directory_groups.name', 'directory_groups.stream_id', 'streams.is_archived'])
    .where('directory_groups.source_id', '=', sourceId)
    .execute();
  const groupStream = new Map(
    mapped.filter((g) => g.is_archived === 0).map((g) => [g.name.toLowerCase(), g.stream_id]),
  );
  const streamIds = [...groupStream.values()];
  const subscribed = new Map<number, Set<number>>();
  if (streamIds.length > 0) {
    for (const s of await db
      .selectFrom('subscriptions')
      .select(['stream_id', 'user_id'])
      .where('realm_id', '=', realmId)
      .where('stream_id', 'in', streamIds)
      .execute()) {
      const set = subscribed.get(s.stream_id) ?? new Set();
      set.add(s.user_id);
      subscribed.set(s.stream_id, set);
    }
  }
  // Only users the source lists, that stay active, have their memberships managed.
  const managed = new Set(
    [...present.values()].filter((p) => p.activeAfter && p.userId !== null).map((p) => p.userId!),
  );

  const seen = new Set<string>();
  for (const group of snapshot.groups) {
    let name: string;
    try {
      name = checkStreamName(group.name, 'group name');
    } catch (err) {
      rowErrors.push({ row: `group ${group.name}`, message: why(err) });
      continue;
    }
    const key = name.toLowerCase();
    if (seen.has(key)) {
      rowErrors.push({ row: `group ${name}`, message: 'group listed twice; the first entry applies' });
      continue;
    }
    seen.add(key);
    const streamId = groupStream.get(key);
    if (streamId === undefined) ops.push({ kind: 'group', name });
    const current =
      streamId === undefined ? new Set<number>() : (subscribed.get(streamId) ?? new Set<number>());
    const wanted = new Set<number>();
    const add: string[] = [];
    for (const externalId of new Set(group.memberExternalIds)) {
      const p = present.get(externalId);
      if (!p || !p.activeAfter) continue;
      if (p.userId !== null) wanted.add(p.userId);
      if (p.userId === null || !current.has(p.userId)) add.push(externalId);
    }
    for (const part of chunks(add, MAX_MEMBERS_PER_OP))
      ops.push({ kind: 'subscribe', group: name, externalIds: part });
    if (streamId !== undefined) {
      const remove = [...current].filter((id) => managed.has(id) && !wanted.has(id));
      for (const part of chunks(remove, MAX_MEMBERS_PER_OP))
        ops.push({ kind: 'unsubscribe', group: name, streamId, userIds: part });
    }
  }
  // A group the source no longer has is a group with no members.
  for (const [key, streamId] of groupStream) {
    if (seen.has(key)) continue;
    const remove = [...(subscribed.get(streamId) ?? [])].filter((id) => managed.has(id));
    for (const part of chunks(remove, MAX_MEMBERS_PER_OP))
      ops.push({ kind: 'unsubscribe', group: key, streamId, userIds: part });
  }
  return ops;
}
