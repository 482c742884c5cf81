import type { Change } from '../../src/changelog/change.js';
import type { ChangeLog } from '../../src/changelog/log.js';
import { roleValues } from '../../src/domain/roles.js';
import {
  checkEmail,
  checkFullName,
  checkStreamDescription,
  checkStreamName,
} from '../../src/domain/validation.js';

/** What the change log says the users, channels and subscriptions are, replayed from seq 1. */
interface Replayed {
  users: Map<number, { email: string | null; fullName: string; role: number; active: boolean }>;
  streams: Map<
    number,
    { name: string; description: string; inviteOnly: boolean; historyPublic: boolean; archived: boolean }
  >;
  subscriptions: Set<string>;
}

function replay(changes: Change[]): Replayed {
  const r: Replayed = { users: new Map(), streams: new Map(), subscriptions: new Set() };
  for (const c of changes) {
    switch (c.kind) {
      case 'user.created': {
        const u = c.payload.user;
        r.users.set(u.id, {
          email: u.delivery_email,
          fullName: u.full_name,
          role: u.role,
          active: u.is_active,
        });
        break;
      }
      case 'user.updated': {
        const u = r.users.get(c.payload.userId)!;
        if (c.payload.field === 'full_name') u.fullName = String(c.payload.value);
        if (c.payload.field === 'role') u.role = Number(c.payload.value);
        if (c.payload.field === 'delivery_email') u.email = c.payload.value as string | null;
        break;
      }
      case 'user.deactivated':
        r.users.get(c.payload.userId)!.active = false;
        break;
      case 'user.reactivated':
        r.users.get(c.payload.userId)!.active = true;
        break;
      case 'stream.created': {
        const s = c.payload.stream;
        r.streams.set(s.id, {
          name: s.name,
          description: s.description,
          inviteOnly: s.invite_only,
          historyPublic: s.history_public_to_subscribers,
          archived: s.is_archived,
        });
        break;
      }
      case 'stream.updated': {
        const s = r.streams.get(c.payload.streamId)!;
        const v = c.payload.value;
        if (c.payload.property === 'name') s.name = String(v);
        if (c.payload.property === 'description') s.description = String(v);
        if (c.payload.property === 'invite_only') s.inviteOnly = v === true;
        if (c.payload.property === 'history_public_to_subscribers') s.historyPublic = v === true;
        break;
      }
      case 'stream.archived':
        r.streams.get(c.payload.streamId)!.archived = true;
        break;
      case 'subscription.added':
        for (const id of c.payload.userIds) r.subscriptions.add(`${id}:${c.payload.streamId}`);
        break;
      case 'subscription.removed':
        for (const id of c.payload.userIds) r.subscriptions.delete(`${id}:${c.payload.streamId}`);
        break;
      default:
        break;
    }
  }
  return r;
}

/** Reasons a value breaks the validation rules that every stored value went through. */
function invalidReason(check: () => unknown): string | null {
  try {
    check();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Why a user as GET /users presents it breaks the rules that admitted it, or null. */
export function presentedUserProblem(u: {
  user_id: number;
  delivery_email: string | null;
  full_name: string;
  role: number;
}): string | null {
  if (!roleValues.includes(u.role)) return `role ${u.role}`;
  return (
    invalidReason(() => {
      if (checkFullName(u.full_name) !== u.full_name) throw new Error('full_name not trimmed');
    }) ??
    (u.delivery_email === null
      ? null
      : invalidReason(() => {
          if (checkEmail(u.delivery_email!) !== u.delivery_email) throw new Error('email not trimmed');
        }))
  );
}

/**
 * Checks, after a run, that the data is whole: the change log has no gap from 1 to its head, that
 * replaying it gives exactly the rows in the database, and that every stored name, e-mail and role
 * still passes the rules that admitted it. Returns the problems found (empty when consistent).
 */
export async function consistencyProblems(log: ChangeLog): Promise<string[]> {
  const problems: string[] = [];
  const db = log.store.db;
  const head = await log.head();
  const changes = await log.readSince(0, head + 10);
  const seqs = changes.map((c) => c.seq);
  if (seqs.length !== head || seqs.some((s, i) => s !== i + 1))
    problems.push(`change log is not contiguous 1..${head}: ${seqs.length} entries`);

  const r = replay(changes);
  const users = await db.selectFrom('users').selectAll().orderBy('id').execute();
  if (users.length !== r.users.size) problems.push(`${users.length} users, log replays ${r.users.size}`);
  for (const u of users) {
    const want = r.users.get(u.id);
    const got = { email: u.delivery_email, fullName: u.full_name, role: u.role, active: u.is_active === 1 };
    if (JSON.stringify(want) !== JSON.stringify(got))
      problems.push(`user ${u.id}: row ${JSON.stringify(got)}, log ${JSON.stringify(want)}`);
    if (!roleValues.includes(u.role)) problems.push(`user ${u.id}: role ${u.role}`);
    const bad =
      invalidReason(() => {
        if (checkFullName(u.full_name) !== u.full_name) throw new Error('full_name not trimmed');
      }) ??
      (u.delivery_email === null
        ? null
        : invalidReason(() => {
            if (checkEmail(u.delivery_email!) !== u.delivery_email) throw new Error('email not trimmed');
          }));
    if (bad) problems.push(`user ${u.id}: ${bad}`);
  }

  const streams = await db.selectFrom('streams').selectAll().orderBy('id').execute();
  if (streams.length !== r.streams.size)
    problems.push(`${streams.length} streams, log replays ${r.streams.size}`);
  for (const s of streams) {
    const want = r.streams.get(s.id);
    const got = {
      name: s.name,
      description: s.description,
      inviteOnly: s.invite_only === 1,
      historyPublic: s.history_public_to_subscribers === 1,
      archived: s.is_archived === 1,
    };
    if (JSON.stringify(want) !== JSON.stringify(got))
      problems.push(`stream ${s.id}: row ${JSON.stringify(got)}, log ${JSON.stringify(want)}`);
    if (s.name_key !== s.name.toLowerCase()) problems.push(`stream ${s.id}: name_key ${s.name_key}`);
    const bad =
      invalidReason(() => {
        if (checkStreamName(s.name) !== s.name) throw new Error('name not trimmed');
      }) ?? invalidReason(() => checkStreamDescription(s.description));
    if (bad) problems.push(`stream ${s.id}: ${bad}`);
  }
  const live = new Map<string, number>();
  for (const s of streams) if (!s.is_archived) live.set(s.name_key, (live.get(s.name_key) ?? 0) + 1);
  for (const [key, n] of live) if (n > 1) problems.push(`${n} live channels named '${key}'`);

  const subs = await db.selectFrom('subscriptions').select(['user_id', 'stream_id']).execute();
  const rows = new Set(subs.map((s) => `${s.user_id}:${s.stream_id}`));
  if (rows.size !== subs.length) problems.push('duplicate subscription rows');
  const missing = [...r.subscriptions].filter((k) => !rows.has(k));
  const extra = [...rows].filter((k) => !r.subscriptions.has(k));
  if (missing.length + extra.length > 0)
    problems.push(`subscriptions differ from the log: missing ${missing}, extra ${extra}`);
  return problems;
}
