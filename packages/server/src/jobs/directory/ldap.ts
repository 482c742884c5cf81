import { Client, InvalidCredentialsError } from 'ldapts';
import type { Entry } from 'ldapts';
import type { LdapSettings } from './settings.js';
import type { DirectoryGroup, DirectorySnapshot, DirectoryUser, SourceRowError } from './snapshot.js';
import { DirectorySourceError } from './snapshot.js';

/** The part of ldapts' internal message parser used to spot answers that are not LDAP. */
interface GarbageAwareParser extends NodeJS.EventEmitter {
  buffer?: Buffer;
  read(data: Buffer, ...rest: unknown[]): void;
}

/** The first value of an attribute as text, or null when absent. */
function first(entry: Entry, attribute: string): string | null {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === attribute.toLowerCase());
  const value = key === undefined ? undefined : entry[key];
  const one = Array.isArray(value) ? value[0] : value;
  if (one === undefined) return null;
  return (Buffer.isBuffer(one) ? one.toString('utf8') : String(one)).trim() || null;
}

function all(entry: Entry, attribute: string): string[] {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === attribute.toLowerCase());
  const value = key === undefined ? [] : entry[key];
  return (Array.isArray(value) ? value : [value]).map((v) =>
    Buffer.isBuffer(v) ? v.toString('utf8') : String(v),
  );
}

/** DNs compare case-insensitively and without spaces around separators. */
const dnKey = (dn: string): string => dn.toLowerCase().replace(/\s*([,=])\s*/g, '$1');

/** Turns a failure of ldapts or the socket into one an administrator can act on. */
function explain(err: unknown, settings: LdapSettings): DirectorySourceError {
  if (err instanceof DirectorySourceError) return err;
  if (err instanceof InvalidCredentialsError)
    return new DirectorySourceError(
      'bad_credentials',
      `LDAP bind as '${settings.bind_dn}' was refused: invalid credentials`,
    );
  const e = err as NodeJS.ErrnoException;
  const msg = e?.message ?? String(err);
  if (
    e?.code === 'ECONNREFUSED' ||
    e?.code === 'ENOTFOUND' ||
    e?.code === 'EHOSTUNREACH' ||
    e?.code === 'ECONNRESET'
  )
    return new DirectorySourceError('unreachable', `LDAP server ${settings.url} is unreachable (${e.code})`);
  if (/timeout|timed out/i.test(msg))
    return new DirectorySourceError('timeout', `LDAP server ${settings.url} did not answer in time (${msg})`);
  if (
    /closed before|socket/i.test(msg) ||
    e?.name === 'MessageParserError' ||
    /Unable to read|Invalid/i.test(msg)
  )
    return new DirectorySourceError(
      'bad_response',
      `LDAP server ${settings.url} gave an answer that is not LDAP (${msg})`,
    );
  return new DirectorySourceError('bad_response', `LDAP error from ${settings.url}: ${msg}`);
}

/**
 * Reads users and groups from an LDAP server with paged searches. Fails as a whole, with a
 * {@link DirectorySourceError}, if the server is unreachable, refuses the bind, does not answer
 * within `timeout_ms` (the bound on the whole read, not just one request) or answers garbage;
 * entries without an id or a name are skipped with a per-row error.
 */
export async function readLdap(settings: LdapSettings, signal?: AbortSignal): Promise<DirectorySnapshot> {
  const client = new Client({
    url: settings.url,
    timeout: settings.timeout_ms,
    connectTimeout: settings.connect_timeout_ms,
  });
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  let onGarbage: ((err: Error) => void) | undefined;
  // ldapts buffers bytes that do not start an LDAP message (a BER SEQUENCE, 0x30) or only logs
  // them, leaving the request to time out; an answer that is not LDAP fails the read at once
  // instead. Its parser is internal: if it ever changes shape, the timeout still bounds the read.
  const parser = (client as unknown as { messageParser?: GarbageAwareParser }).messageParser;
  if (parser && typeof parser.read === 'function') {
    const read = parser.read.bind(parser);
    parser.read = (data, ...rest) => {
      if (!parser.buffer && data.length > 0 && data[0] !== 0x30)
        parser.emit('error', new Error(`unexpected first byte 0x${data[0]!.toString(16).padStart(2, '0')}`));
      else read(data, ...rest);
    };
  }
  // ldapts bounds each request; a server that trickles pages forever is bounded here.
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new DirectorySourceError(
            'timeout',
            `LDAP read from ${settings.url} took longer than ${settings.timeout_ms} ms`,
          ),
        ),
      settings.timeout_ms,
    );
    onAbort = () => reject(signal!.reason instanceof Error ? signal!.reason : new Error('sync aborted'));
    onGarbage = (err) =>
      reject(
        new DirectorySourceError(
          'bad_response',
          `LDAP server ${settings.url} gave an answer that is not LDAP (${err.message})`,
        ),
      );
    parser?.on('error', onGarbage);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([read(client, settings), bound]);
  } catch (err) {
    if (signal?.aborted) throw err;
    throw explain(err, settings);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
    if (onGarbage) parser?.off('error', onGarbage);
    await client.unbind().catch(() => {});
  }
}

async function read(client: Client, s: LdapSettings): Promise<DirectorySnapshot> {
  await client.bind(s.bind_dn, s.bind_password);
  const rowErrors: SourceRowError[] = [];
  const users: DirectoryUser[] = [];
  const byDn = new Map<string, string>();
  const people = await client.search(s.user_base_dn, {
    scope: 'sub',
    filter: s.user_filter,
    attributes: [s.id_attribute, s.name_attribute, s.email_attribute],
    paged: { pageSize: s.page_size },
  });
  for (const entry of people.searchEntries) {
    const externalId = first(entry, s.id_attribute);
    const fullName = first(entry, s.name_attribute);
    if (!externalId) {
      rowErrors.push({ row: entry.dn, message: `no ${s.id_attribute} attribute` });
      continue;
    }
    if (!fullName) {
      rowErrors.push({ row: entry.dn, message: `no ${s.name_attribute} attribute` });
      continue;
    }
    users.push({ externalId, fullName, email: first(entry, s.email_attribute) });
    byDn.set(dnKey(entry.dn), externalId);
  }
  const groups: DirectoryGroup[] = [];
  if (s.group_base_dn) {
    const found = await client.search(s.group_base_dn, {
      scope: 'sub',
      filter: s.group_filter,
      attributes: [s.group_name_attribute, s.member_attribute],
      paged: { pageSize: s.page_size },
    });
    for (const entry of found.searchEntries) {
      const name = first(entry, s.group_name_attribute);
      if (!name) {
        rowErrors.push({ row: entry.dn, message: `no ${s.group_name_attribute} attribute` });
        continue;
      }
      // Members that are not users under the user base (other groups, the placeholder member an
      // empty groupOfNames needs) are not people to subscribe.
      const memberExternalIds = all(entry, s.member_attribute)
        .map((dn) => byDn.get(dnKey(dn)))
        .filter((id): id is string => id !== undefined);
      groups.push({ name, memberExternalIds });
    }
  }
  return { users, groups, rowErrors, unreadableIds: [] };
}
