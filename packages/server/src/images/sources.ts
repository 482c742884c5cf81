import { CompiledQuery } from 'kysely';
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.js';

/**
 * Bytes of recently transformed sources kept in memory by default (CONCORD_IMAGE_SOURCE_MEMORY_BYTES):
 * 64 originals of 0.5 MB (32 at the default 1 MB upload limit). Reading a 0.5 MB source from SQLite costs ~0.4 ms of the event loop plus a
 * fresh 0.5 MB allocation per cold transform, a tenth of the 4 ms that were all of Concord's own
 * cost around a 20 ms avatar-sized transform; the sizes and formats of one avatar are typically
 * asked for together (one page shows it at several sizes), so the second and later ones find it here.
 */
const MEMORY_BYTES = 32 * 1024 * 1024;

/**
 * The stored sources of transforms (uploaded originals) by SHA-256. Content-addressed, so an entry
 * in memory can never be stale; whether a source is still stored is always asked of the database
 * ({@link Sources.exists}), so a deleted one is not served from memory.
 */
export class Sources {
  /** Least recently used first (a Map iterates in insertion order; a hit is moved to the end). */
  private readonly memory = new Map<string, Buffer>();
  private bytes = 0;
  private existsQuery?: { db: Kysely<Database>; sql: string };

  /** `db` is asked for the database on each use (an app's store is opened after its routes exist). */
  constructor(
    private readonly db: () => Kysely<Database>,
    private readonly memoryBytes = MEMORY_BYTES,
  ) {}

  /** Whether `sha256` is a stored upload (always the database's answer). */
  async exists(sha256: string): Promise<boolean> {
    const db = this.db();
    // Built and compiled once per database (in its dialect), then run with each SHA-256: building
    // and compiling it cost 20 to 40 µs a call (measured on SQLite), a tenth of the CPU of serving
    // a cached result, which asks this on every request.
    if (this.existsQuery?.db !== db) this.existsQuery = { db, sql: sourceExistsQuery(db, '').sql };
    const { rows } = await db.executeQuery(CompiledQuery.raw(this.existsQuery.sql, [sha256]));
    return rows.length > 0;
  }

  /**
   * The bytes of `sha256` if they are in memory (recently read), synchronously, so that a transform
   * can start in the same tick. Callers that must not act on a deleted source check {@link exists}.
   */
  recent(sha256: string): Buffer | undefined {
    const hit = this.memory.get(sha256);
    if (hit) {
      this.memory.delete(sha256);
      this.memory.set(sha256, hit);
    }
    return hit;
  }

  /**
   * The bytes of `sha256`, from memory when recently read, else from the database (undefined when
   * not stored there). Callers that must not act on a deleted source check {@link exists}.
   */
  async read(sha256: string): Promise<Buffer | undefined> {
    const hit = this.recent(sha256);
    if (hit) return hit;
    const db = this.db();
    const { rows } = await db.executeQuery(sourceContentQuery(db, sha256));
    if (!rows[0]) return undefined;
    const bytes = asBuffer(rows[0].content);
    this.remember(sha256, bytes);
    return bytes;
  }

  private remember(sha256: string, bytes: Buffer): void {
    if (bytes.length > this.memoryBytes || this.memory.has(sha256)) return;
    this.memory.set(sha256, bytes);
    this.bytes += bytes.length;
    for (const [key, old] of this.memory) {
      if (this.bytes <= this.memoryBytes) break;
      this.memory.delete(key);
      this.bytes -= old.length;
    }
  }
}

/**
 * The two queries of a source by its SHA-256, which every transform request makes: both are one
 * lookup in `avatars_sha256` (migration 009), whatever else is stored; the existence check reads
 * the index alone.
 */
export function sourceExistsQuery(db: Kysely<Database>, sha256: string): CompiledQuery<{ sha256: string }> {
  return db.selectFrom('avatars').select('sha256').where('sha256', '=', sha256).compile();
}

export function sourceContentQuery(
  db: Kysely<Database>,
  sha256: string,
): CompiledQuery<{ content: Uint8Array }> {
  return db.selectFrom('avatars').select('content').where('sha256', '=', sha256).compile();
}

/**
 * `bytes` as a Buffer, without copying: the database drivers return Buffers already, and a copy of
 * a 0.5 MB source cost 0.3 ms (a fresh allocation's page faults), 1.5% of a small transform.
 */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
