import type { CommandContext } from '../../changelog/log.js';
import { fail } from '../../errors.js';
import type { Actor } from '../../domain/roles.js';
import { Role } from '../../domain/roles.js';
import { createStream } from '../../domain/streams/createStream.js';
import { findStreamByName, loadStream } from '../../domain/streams/streamRecord.js';
import { unsubscribe } from '../../domain/subscriptions/unsubscribe.js';
import { deactivateUser } from '../../domain/users/deactivateUser.js';
import { reactivateUser } from '../../domain/users/reactivateUser.js';
import { updateUser } from '../../domain/users/updateUser.js';
import type { StreamRow } from '../../store/schema.js';
import type { JobCounts, JobRun } from '../job.js';
import type { SyncOp, SyncPlan } from './plan.js';
import { opSize } from './plan.js';
import { subscribeMembers } from './subscribeMembers.js';
import { createMembers } from './createMembers.js';
import type { DirectoryUser } from './snapshot.js';

/**
 * Work units per fenced command. Measured on SQLite and PostgreSQL with 10,000 users: 500 keeps
 * one page's transaction (and the time the write lock is held) well under a second, while the
 * per-commit cost (one fsync, one doorbell) stays a few percent of the whole.
 */
export const PAGE_SIZE = 500;

/** Counts a sync reports (skipped is the number of per-row errors). */
export const emptyCounts = (): JobCounts => ({
  created: 0,
  updated: 0,
  deactivated: 0,
  subscribed: 0,
  unsubscribed: 0,
  skipped: 0,
});

/** Splits ops into pages of at most `size` work units, keeping their order. */
export function pages(ops: SyncOp[], size = PAGE_SIZE): SyncOp[][] {
  const out: SyncOp[][] = [];
  let page: SyncOp[] = [];
  let units = 0;
  for (const op of ops) {
    const n = opSize(op);
    if (page.length > 0 && units + n > size) {
      out.push(page);
      page = [];
      units = 0;
    }
    page.push(op);
    units += n;
  }
  if (page.length > 0) out.push(page);
  return out;
}

/** The realm owner the sync acts as: its commands are an owner's, as if done by hand. */
async function loadActor(ctx: CommandContext): Promise<Actor> {
  const owner = await ctx.trx
    .selectFrom('users')
    .select(['id', 'realm_id', 'role', 'is_active'])
    .where('realm_id', '=', ctx.realmId)
    .where('role', '=', Role.OWNER)
    .where('is_active', '=', 1)
    .orderBy('id')
    .executeTakeFirst();
  if (!owner) throw fail.badRequest('The organization has no active owner for a directory sync to act as');
  return owner;
}

async function streamOf(ctx: CommandContext, sourceId: number, group: string): Promise<StreamRow> {
  const mapped = await ctx.trx
    .selectFrom('directory_groups')
    .select('stream_id')
    .where('source_id', '=', sourceId)
    .where('name', '=', group.toLowerCase())
    .executeTakeFirst();
  if (!mapped) throw new Error(`group '${group}' has no channel yet`);
  return loadStream(ctx.trx, ctx.realmId, mapped.stream_id);
}

/** One page's command: its context, actor and counts, and the links it has yet to write. */
interface Page {
  ctx: CommandContext;
  actor: Actor;
  sourceId: number;
  counts: JobCounts;
  /** Users to create, in one statement before the next op of another kind (see createMembers). */
  creates: DirectoryUser[];
  /** Written in one statement before anything reads them (saves a round trip per created user). */
  links: { source_id: number; external_id: string; user_id: number }[];
}

async function flushCreates(page: Page): Promise<void> {
  if (page.creates.length === 0) return;
  const users = await createMembers(page.ctx, page.creates);
  page.creates.forEach((u, i) =>
    page.links.push({ source_id: page.sourceId, external_id: u.externalId, user_id: users[i]!.id }),
  );
  page.counts.created += users.length;
  page.creates = [];
}

async function flushLinks(page: Page): Promise<void> {
  if (page.links.length === 0) return;
  await page.ctx.trx.insertInto('directory_links').values(page.links).execute();
  page.links = [];
}

async function applyOp(page: Page, op: SyncOp): Promise<void> {
  const { ctx, actor, sourceId, counts } = page;
  if (op.kind !== 'create') await flushCreates(page);
  switch (op.kind) {
    case 'create':
      page.creates.push(op.user);
      return;
    case 'link':
      page.links.push({ source_id: sourceId, external_id: op.externalId, user_id: op.userId });
      return;
    case 'rename':
      await updateUser(ctx, actor, op.userId, { fullName: op.fullName });
      counts.updated++;
      return;
    case 'reactivate':
      await reactivateUser(ctx, actor, op.userId);
      counts.updated++;
      return;
    case 'deactivate':
      await deactivateUser(ctx, actor, op.userId);
      counts.deactivated++;
      return;
    case 'group': {
      const stream =
        (await findStreamByName(ctx.trx, ctx.realmId, op.name)) ??
        (await createStream(ctx, actor, { name: op.name }));
      await ctx.trx
        .insertInto('directory_groups')
        .values({ source_id: sourceId, name: op.name.toLowerCase(), stream_id: stream.id })
        .onConflict((oc) => oc.columns(['source_id', 'name']).doUpdateSet({ stream_id: stream.id }))
        .execute();
      return;
    }
    case 'subscribe': {
      await flushLinks(page);
      const stream = await streamOf(ctx, sourceId, op.group);
      const rows = await ctx.trx
        .selectFrom('directory_links')
        .select('user_id')
        .where('source_id', '=', sourceId)
        .where('external_id', 'in', op.externalIds)
        .execute();
      if (rows.length === 0) return;
      counts.subscribed += (
        await subscribeMembers(
          ctx,
          stream,
          rows.map((r) => r.user_id),
        )
      ).length;
      return;
    }
    case 'unsubscribe': {
      const stream = await loadStream(ctx.trx, ctx.realmId, op.streamId);
      const before = await ctx.trx
        .selectFrom('subscriptions')
        .select('user_id')
        .where('stream_id', '=', stream.id)
        .where('user_id', 'in', op.userIds)
        .execute();
      if (before.length === 0) return;
      await unsubscribe(ctx, actor, { streamNames: [stream.name], principals: before.map((r) => r.user_id) });
      counts.unsubscribed += before.length;
      return;
    }
  }
}

/**
 * Applies a plan page by page, each page one fenced command: a page commits whole or not at all,
 * and a worker that lost its lease commits nothing more. Reports progress after every page; stops
 * between pages when the run is aborted.
 */
export async function applyPlan(
  run: Pick<JobRun, 'fenced' | 'progress' | 'signal'>,
  sourceId: number,
  plan: SyncPlan,
  opts: { pageSize?: number } = {},
): Promise<JobCounts> {
  const counts = { ...emptyCounts(), skipped: plan.rowErrors.length };
  const total = plan.ops.reduce((n, op) => n + opSize(op), 0);
  let done = 0;
  await run.progress(0, total, counts);
  for (const page of pages(plan.ops, opts.pageSize)) {
    run.signal.throwIfAborted();
    const pageCounts = emptyCounts();
    await run.fenced(async (ctx) => {
      // Counts are per attempt of the transaction: a rolled-back page counts nothing.
      Object.assign(pageCounts, emptyCounts());
      const state: Page = {
        ctx,
        actor: await loadActor(ctx),
        sourceId,
        counts: pageCounts,
        creates: [],
        links: [],
      };
      for (const op of page) await applyOp(state, op);
      await flushCreates(state);
      await flushLinks(state);
    });
    for (const k of Object.keys(pageCounts) as (keyof JobCounts)[]) counts[k] += pageCounts[k];
    done += page.reduce((n, op) => n + opSize(op), 0);
    await run.progress(done, total, counts);
  }
  return counts;
}
