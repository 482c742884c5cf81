import type { Kysely } from 'kysely';
import { ConcordError } from '../errors.js';
import type { Database, UserRow } from '../store/schema.js';
import { apiKeysEqual } from './apiKey.js';
import type { FailureLimiter } from './rateLimit.js';

/** The placeholder API e-mail of a user without an address, as Zulip forms it. */
export const placeholderEmail = (userId: number, host: string): string => `user${userId}@${host}`;

/** The e-mail the API shows for a user: their address, or the placeholder. */
export const apiEmail = (user: Pick<UserRow, 'id' | 'delivery_email'>, host: string): string =>
  user.delivery_email ?? placeholderEmail(user.id, host);

/** Finds a user of the realm by API e-mail (address or placeholder), case-insensitively. */
export async function findUserByApiEmail(
  db: Kysely<Database>,
  realmId: number,
  email: string,
  host: string,
): Promise<UserRow | undefined> {
  const key = email.trim().toLowerCase();
  // No stored address has a NUL (checkEmail), and PostgreSQL refuses to compare text holding one.
  if (key.includes('\u0000')) return undefined;
  const byAddress = await db
    .selectFrom('users')
    .selectAll()
    .where('realm_id', '=', realmId)
    .where('email_key', '=', key)
    .executeTakeFirst();
  if (byAddress) return byAddress;
  const m = /^user(\d{1,10})@(.+)$/.exec(key);
  if (!m || m[2] !== host.toLowerCase()) return undefined;
  return db
    .selectFrom('users')
    .selectAll()
    .where('realm_id', '=', realmId)
    .where('id', '=', Number(m[1]))
    .where('delivery_email', 'is', null)
    .executeTakeFirst();
}

/** Where authentication looks users up: the database, or the node's cache of it. */
export interface UserLookup {
  user(id: number): Promise<UserRow | null>;
  userByEmailKey(emailKey: string): Promise<UserRow | null>;
}

/** {@link findUserByApiEmail} through a {@link UserLookup}. */
export async function lookupUserByApiEmail(
  lookup: UserLookup,
  email: string,
  host: string,
): Promise<UserRow | undefined> {
  const key = email.trim().toLowerCase();
  if (key.includes('\u0000')) return undefined;
  const byAddress = await lookup.userByEmailKey(key);
  if (byAddress) return byAddress;
  const m = /^user(\d{1,10})@(.+)$/.exec(key);
  if (!m || m[2] !== host.toLowerCase() || Number(m[1]) > 2 ** 31 - 1) return undefined;
  const user = await lookup.user(Number(m[1]));
  return user && user.delivery_email === null ? user : undefined;
}

/** Credentials read from an `Authorization: Basic` header. */
export interface BasicCredentials {
  email: string;
  key: string;
  /** The limiter keys failures count towards: the e-mail and the client address. */
  limiterKeys: string[];
}

/**
 * Reads `Authorization: Basic email:api_key` and checks the failure limiter; throws the Zulip error
 * for a missing or malformed header, or a client that failed too often.
 */
export function readBasic(
  header: string | undefined,
  clientIp: string,
  limiter: FailureLimiter,
): BasicCredentials {
  if (!header)
    throw new ConcordError('UNAUTHORIZED', 'Not logged in: API authentication or user session required');
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  const decoded = m ? Buffer.from(m[1]!, 'base64').toString('utf8') : '';
  const colon = decoded.lastIndexOf(':');
  if (colon <= 0)
    throw new ConcordError('UNAUTHORIZED', 'Invalid authorization header: expected Basic email:api_key');
  const email = decoded.slice(0, colon);
  const limiterKeys = [`email:${email.toLowerCase()}`, `ip:${clientIp}`];
  const wait = Math.max(...limiterKeys.map((k) => limiter.blockedFor(k)));
  if (wait > 0) throw new ConcordError('RATE_LIMIT_HIT', 'API usage exceeded rate limit', {}, wait);
  return { email, key: decoded.slice(colon + 1), limiterKeys };
}

/**
 * The user the credentials name, if the key is theirs and they are active. Unknown e-mails and
 * wrong keys fail alike (no account probing) and count towards the limiter.
 */
export function checkCredentials(
  user: UserRow | null | undefined,
  creds: BasicCredentials,
  limiter: FailureLimiter,
): UserRow {
  if (!user || !apiKeysEqual(creds.key, user.api_key)) {
    limiter.fail(creds.limiterKeys);
    throw new ConcordError('INVALID_API_KEY', 'Invalid API key');
  }
  if (!user.is_active) throw new ConcordError('USER_DEACTIVATED', 'Account is deactivated');
  return user;
}

/**
 * Checks HTTP Basic `email:api_key` credentials. Unknown e-mails and wrong keys fail alike (no
 * account probing); failures count towards the limiter per e-mail and per client address.
 */
export async function authenticateBasic(
  lookup: UserLookup,
  host: string,
  header: string | undefined,
  clientIp: string,
  limiter: FailureLimiter,
): Promise<UserRow> {
  const creds = readBasic(header, clientIp, limiter);
  return checkCredentials(await lookupUserByApiEmail(lookup, creds.email, host), creds, limiter);
}
