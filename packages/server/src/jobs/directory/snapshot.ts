/**
 * The neutral model every connector produces: what a directory says at one moment. A sync compares
 * it with the database and applies the differences; nothing downstream knows which connector made it.
 */

/** A person in the directory. `externalId` is stable across renames (LDAP uid, CSV external_id). */
export interface DirectoryUser {
  externalId: string;
  email: string | null;
  fullName: string;
  /** False when the source marks the person inactive; absent means active. */
  active?: boolean;
}

/** A group of the directory; it maps to a channel of the same name. */
export interface DirectoryGroup {
  name: string;
  memberExternalIds: string[];
}

/** A per-row problem found while reading a source: the row is skipped, the rest applies. */
export interface SourceRowError {
  /** Where it is: `line 12` for CSV, the entry's DN for LDAP. */
  row: string;
  message: string;
}

/** One reading of a directory. */
export interface DirectorySnapshot {
  users: DirectoryUser[];
  groups: DirectoryGroup[];
  /** Rows that could not be read; skipped, with a reason each. */
  rowErrors: SourceRowError[];
  /**
   * External ids that appear in skipped rows: their users are neither deactivated nor have their
   * memberships changed, since the source's intent for them is unknown.
   */
  unreadableIds: string[];
}

/** Why reading a whole source failed (the sync fails with this message; nothing is applied). */
export type SourceFailure = 'unreachable' | 'bad_credentials' | 'timeout' | 'bad_response' | 'bad_settings';

/** A source that could not be read at all, with a message an administrator can act on. */
export class DirectorySourceError extends Error {
  constructor(
    readonly reason: SourceFailure,
    message: string,
  ) {
    super(message);
    this.name = 'DirectorySourceError';
  }
}
