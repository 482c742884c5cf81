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

/** An `Authorization: Basic` header decoded: e-mail and key, or null when it is malformed. */
interface DecodedBasic {
  email: string;
  key: string;
  emailLimiterKey: string;
}

// Clients send the same header on every request: its decoding (a regular expression, base64,
// lower-casing) is kept, per distinct header, for the clients of a workspace. Nothing here is
// trusted: the key is still compared with the user's on every request.
const decoded = new Map<string, DecodedBasic | null>();
const DECODED_MAX = 10_000;

function decodeBasic(header: string): DecodedBasic | null {
  let d = decoded.get(header);
  if (d !== undefined) return d;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  const text = m ? Buffer.from(m[1]!, 'base64').toString('utf8') : '';
  const colon = text.lastIndexOf(':');
  if (colon <= 0) d = null;
  else {
    const email = text.slice(0, colon);
    d = { email, key: text.slice(colon + 1), emailLimiterKey: `email:${email.toLowerCase()}` };
  }
  if (decoded.size >= DECODED_MAX) decoded.clear();
  decoded.set(header, d);
  return d;
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
  const d = decodeBasic(header);
  if (!d)
    throw new ConcordError('UNAUTHORIZED', 'Invalid authorization header: expected Basic email:api_key');
  const limiterKeys = [d.emailLimiterKey, `ip:${clientIp}`];
  const wait = Math.max(limiter.blockedFor(limiterKeys[0]!), limiter.blockedFor(limiterKeys[1]!));
  if (wait > 0) throw new ConcordError('RATE_LIMIT_HIT', 'API usage exceeded rate limit', {}, wait);
  return { email: d.email, key: d.key, limiterKeys };
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
