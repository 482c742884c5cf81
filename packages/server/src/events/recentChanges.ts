import type { Change } from '../changelog/change.js';

/**
 * The node's window onto the newest changes, filled once by the node's events tail and shared by
 * every queue on the node: a change that 5,000 queues need is read from the database once.
 */
export class RecentChanges {
  private items: Change[] = [];

  constructor(private readonly capacity = 20_000) {}

  /** Appends consecutive changes (the tail delivers them in order). */
  push(changes: readonly Change[]): void {
    this.items.push(...changes);
    if (this.items.length > this.capacity) this.items.splice(0, this.items.length - this.capacity);
  }

  /** Drops everything (after the tail reset). */
  clear(): void {
    this.items = [];
  }

  /**
   * The changes with `after < seq <= upTo`, or null when the window does not reach back to
   * `after + 1` (the caller reads the database instead).
   */
  between(after: number, upTo: number): Change[] | null {
    if (upTo <= after) return [];
    const first = this.items[0];
    if (!first || first.seq > after + 1) return null;
    const start = after + 1 - first.seq;
    const end = upTo - first.seq + 1;
    if (end > this.items.length) return null;
    return this.items.slice(start, end);
  }
}
