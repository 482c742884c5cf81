import { parse } from 'csv-parse/sync';
import { ConcordError } from '../../errors.js';
import { checkEmail, checkFullName, checkStreamName } from '../../domain/validation.js';
import type { DirectoryGroup, DirectorySnapshot, DirectoryUser, SourceRowError } from './snapshot.js';
import { DirectorySourceError } from './snapshot.js';

/**
 * The CSV format (UTF-8, comma-separated, RFC 4180 quoting, a header row first):
 *
 *     external_id,email,full_name,channels
 *     jdoe,jane@example.org,Jane Doe,engineering;oncall
 *     x42,,Bot Without Mail,
 *
 * `external_id` is required and unique in the file; `email` may be empty; `channels` lists the
 * channels the person belongs to, separated by `;` (may be empty). A row that breaks any rule is
 * skipped as a whole, with an error naming its line; every other row applies.
 */
export const CSV_COLUMNS = ['external_id', 'email', 'full_name', 'channels'] as const;

const reason = (err: unknown): string => (err instanceof ConcordError ? err.message : String(err));

/** Reads a CSV upload into a snapshot; only a missing or wrong header fails the whole file. */
export function readCsv(text: string): DirectorySnapshot {
  const rowErrors: SourceRowError[] = [];
  const records = parse(text, {
    bom: true,
    info: true,
    relax_column_count: true,
    skip_empty_lines: true,
    skip_records_with_error: true,
    on_skip: (err: { lines?: number; message: string } | undefined) => {
      if (err) rowErrors.push({ row: `line ${err.lines ?? '?'}`, message: err.message });
    },
  }) as unknown as { record: string[]; info: { lines: number } }[];
  const header = records.shift();
  const names = header?.record.map((c) => c.trim().toLowerCase());
  if (!names || CSV_COLUMNS.some((c, i) => names[i] !== c) || names.length !== CSV_COLUMNS.length)
    throw new DirectorySourceError(
      'bad_response',
      `CSV header must be '${CSV_COLUMNS.join(',')}' (got '${header?.record.join(',') ?? ''}')`,
    );

  const users: DirectoryUser[] = [];
  const members = new Map<string, { name: string; ids: string[] }>();
  const seenIds = new Set<string>();
  const seenEmails = new Set<string>();
  const unreadable = new Set<string>();
  for (const { record, info } of records) {
    const row = `line ${info.lines}`;
    const skip = (message: string, id?: string) => {
      rowErrors.push({ row, message });
      if (id) unreadable.add(id);
    };
    if (record.length !== CSV_COLUMNS.length) {
      skip(`expected ${CSV_COLUMNS.length} columns, got ${record.length}`, record[0]?.trim() || undefined);
      continue;
    }
    const [rawId, rawEmail, rawName, rawChannels] = record.map((v) => v.trim()) as [
      string,
      string,
      string,
      string,
    ];
    if (!rawId) {
      skip('external_id is empty');
      continue;
    }
    if (rawId.length > 255) {
      skip('external_id is longer than 255 characters');
      continue;
    }
    if (seenIds.has(rawId)) {
      skip(`external_id '${rawId}' appears on an earlier line`);
      continue;
    }
    let email: string | null = null;
    let fullName: string;
    const channels: string[] = [];
    try {
      if (rawEmail) email = checkEmail(rawEmail);
      fullName = checkFullName(rawName);
      for (const c of rawChannels
        .split(';')
        .map((n) => n.trim())
        .filter(Boolean))
        channels.push(checkStreamName(c, 'channels'));
    } catch (err) {
      skip(reason(err), rawId);
      continue;
    }
    if (email && seenEmails.has(email.toLowerCase())) {
      skip(`email '${email}' appears on an earlier line`, rawId);
      continue;
    }
    seenIds.add(rawId);
    if (email) seenEmails.add(email.toLowerCase());
    users.push({ externalId: rawId, email, fullName });
    for (const c of channels) {
      const key = c.toLowerCase();
      const group = members.get(key) ?? { name: c, ids: [] };
      if (!group.ids.includes(rawId)) group.ids.push(rawId);
      members.set(key, group);
    }
  }
  const groups: DirectoryGroup[] = [...members.values()].map((g) => ({
    name: g.name,
    memberExternalIds: g.ids,
  }));
  // An id both read and skipped (a later duplicate) keeps its first row.
  for (const id of seenIds) unreadable.delete(id);
  // Parse errors are reported while parsing, before the rows read; list all in file order.
  const lineOf = (e: SourceRowError) => Number(e.row.replace(/^line /, '')) || 0;
  rowErrors.sort((a, b) => lineOf(a) - lineOf(b));
  return { users, groups, rowErrors, unreadableIds: [...unreadable] };
}
