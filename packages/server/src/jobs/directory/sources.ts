import type { Kysely } from 'kysely';
import type { CommandContext } from '../../changelog/log.js';
import { ConcordError, fail } from '../../errors.js';
import type { Actor } from '../../domain/roles.js';
import { isAdmin } from '../../domain/roles.js';
import type { Database, DirectorySourceRow } from '../../store/schema.js';
import type { Connector } from './settings.js';
import { parseSettings, presentSettings } from './settings.js';

/** A directory source as administrators see it (secrets hidden). */
export interface DirectorySourceView {
  id: number;
  name: string;
  connector: Connector;
  settings: Record<string, unknown>;
  schedule_seconds: number | null;
  deactivate_missing: boolean;
  date_created: number;
}

export interface SourceInput {
  name: string;
  connector: Connector;
  settings: unknown;
  scheduleSeconds: number | null;
  deactivateMissing: boolean;
}

export function presentSource(row: DirectorySourceRow): DirectorySourceView {
  const connector = row.connector as Connector;
  return {
    id: row.id,
    name: row.name,
    connector,
    settings: presentSettings(connector, JSON.parse(row.settings)),
    schedule_seconds: row.schedule,
    deactivate_missing: row.deactivate_missing === 1,
    date_created: Number(row.created_at),
  };
}

function checkSettings(connector: Connector, settings: unknown): string {
  try {
    return JSON.stringify(parseSettings(connector, settings));
  } catch (err) {
    const issue = (err as { issues?: { path: PropertyKey[]; message: string }[] }).issues?.[0];
    if (!issue) throw err;
    throw fail.invalid(`settings.${issue.path.map(String).join('.')}`, issue.message);
  }
}

function requireAdmin(actor: Actor): void {
  if (!isAdmin(actor.role)) throw fail.forbidden('Must be an organization administrator');
}

/** The source with this id in the realm, or a BAD_REQUEST naming it. */
export async function loadSource(
  db: Kysely<Database>,
  realmId: number,
  id: number,
): Promise<DirectorySourceRow> {
  const row = await db
    .selectFrom('directory_sources')
    .selectAll()
    .where('realm_id', '=', realmId)
    .where('id', '=', id)
    .executeTakeFirst();
  if (!row) throw new ConcordError('BAD_REQUEST', `No such directory source: ${id}`);
  return row;
}

async function checkName(ctx: CommandContext, name: string, except?: number): Promise<string> {
  const trimmed = name.trim();
  if (trimmed.length === 0 || trimmed.length > 100) throw fail.invalid('name', 'must be 1 to 100 characters');
  const clash = await ctx.trx
    .selectFrom('directory_sources')
    .select('id')
    .where('realm_id', '=', ctx.realmId)
    .where('name', '=', trimmed)
    .executeTakeFirst();
  if (clash && clash.id !== except)
    throw fail.badRequest(`A directory source named '${trimmed}' already exists`);
  return trimmed;
}

/** Creates a source (administrators only); its settings are validated for its connector. */
export async function createSource(
  ctx: CommandContext,
  actor: Actor,
  input: SourceInput,
): Promise<DirectorySourceRow> {
  requireAdmin(actor);
  const name = await checkName(ctx, input.name);
  return ctx.trx
    .insertInto('directory_sources')
    .values({
      realm_id: ctx.realmId,
      name,
      connector: input.connector,
      settings: checkSettings(input.connector, input.settings),
      schedule: input.scheduleSeconds,
      deactivate_missing: input.deactivateMissing ? 1 : 0,
      created_at: ctx.now,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/**
 * Changes a source. Settings given are merged over the stored ones, so an LDAP bind password is
 * kept unless a new one is sent; the result is validated as a whole.
 */
export async function updateSource(
  ctx: CommandContext,
  actor: Actor,
  id: number,
  input: Partial<Omit<SourceInput, 'connector'>>,
): Promise<DirectorySourceRow> {
  requireAdmin(actor);
  const row = await loadSource(ctx.trx, ctx.realmId, id);
  const connector = row.connector as Connector;
  const set: Partial<DirectorySourceRow> = {};
  if (input.name !== undefined) set.name = await checkName(ctx, input.name, id);
  if (input.settings !== undefined) {
    if (typeof input.settings !== 'object' || input.settings === null)
      throw fail.invalid('settings', 'must be an object');
    set.settings = checkSettings(connector, { ...JSON.parse(row.settings), ...input.settings });
  }
  if (input.scheduleSeconds !== undefined) set.schedule = input.scheduleSeconds;
  if (input.deactivateMissing !== undefined) set.deactivate_missing = input.deactivateMissing ? 1 : 0;
  if (Object.keys(set).length === 0) return row;
  return ctx.trx
    .updateTable('directory_sources')
    .set(set)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/**
 * Deletes a source and its links; the users and channels it created stay (they are the
 * organization's now). A source with an active sync cannot be deleted: cancel it first.
 */
export async function deleteSource(
  ctx: CommandContext,
  actor: Actor,
  id: number,
  activeSync: boolean,
): Promise<void> {
  requireAdmin(actor);
  await loadSource(ctx.trx, ctx.realmId, id);
  if (activeSync) throw fail.badRequest(`Directory source ${id} has a sync in progress; cancel it first`);
  await ctx.trx.deleteFrom('directory_links').where('source_id', '=', id).execute();
  await ctx.trx.deleteFrom('directory_groups').where('source_id', '=', id).execute();
  await ctx.trx.deleteFrom('directory_sources').where('id', '=', id).execute();
}
