import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';

/**
 * Tells consumers that the log's head may have moved. Consumers never take data from it: they read
 * the `changes` table. A lost ring costs latency (the safety-net poll catches up), never an entry.
 */
export interface Doorbell {
  /** Called inside the writing transaction; rings other processes once it commits. */
  announce(trx: Kysely<unknown>, seq: number): Promise<void>;
  /**
   * The PostgreSQL NOTIFY channel {@link announce} notifies, with the new head as payload, if that
   * is how it rings: a writer may then send the `pg_notify` in its own statement instead.
   */
  readonly notifyChannel?: string;
  /** Called after commit; rings this process at once. */
  ring(seq: number): void;
  /** `seq` is the new head, or `null` when it is unknown (after a reconnect): read to find out. */
  subscribe(listener: (seq: number | null) => void): () => void;
  /**
   * Calls `listener(false)` when the doorbell stops hearing other processes' commits and
   * `listener(true)` once it hears them again (a consumer then catches up from its cursor). An
   * in-process doorbell never loses its connection.
   */
  onConnection(listener: (up: boolean) => void): () => void;
  /** Whether it currently hears other processes' commits. */
  readonly connected: boolean;
  close(): Promise<void>;
}

/** The embedded doorbell: an in-process emitter. */
export class LocalDoorbell implements Doorbell {
  protected readonly emitter = new EventEmitter().setMaxListeners(0);
  connected = true;

  async announce(_trx: Kysely<unknown>, _seq: number): Promise<void> {}

  ring(seq: number | null): void {
    this.emitter.emit('ring', seq);
  }

  subscribe(listener: (seq: number | null) => void): () => void {
    this.emitter.on('ring', listener);
    return () => this.emitter.off('ring', listener);
  }

  onConnection(listener: (up: boolean) => void): () => void {
    this.emitter.on('connection', listener);
    return () => this.emitter.off('connection', listener);
  }

  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}

/** The NOTIFY channel of one database and schema (an identifier of at most 63 bytes). */
export function notifyChannel(scope: string): string {
  return `concord_changes_${createHash('sha256').update(scope).digest('hex').slice(0, 24)}`;
}

/**
 * The cluster doorbell: PostgreSQL NOTIFY, sent inside the transaction so that it is delivered
 * if and only if the change commits, and LISTEN on a dedicated connection that reconnects with
 * backoff. Every (re)connect rings with `null` so that consumers re-read whatever they missed.
 */
export class PostgresDoorbell extends LocalDoorbell {
  private client: pg.Client | null = null;
  private closed = false;
  private retryMs = 100;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly url: string,
    private readonly channel: string,
    private readonly log: Logger,
    /** Fault injection for tests: the share (0..1) of received notifications to drop. */
    private readonly dropShare = 0,
  ) {
    super();
    this.connected = false;
  }

  /** Connects and listens; resolves once listening (or rejects on the first failure). */
  async start(): Promise<void> {
    await this.connect();
  }

  override async announce(trx: Kysely<unknown>, seq: number): Promise<void> {
    await sql`SELECT pg_notify(${this.channel}, ${String(seq)})`.execute(trx);
  }

  get notifyChannel(): string | undefined {
    return this.channel;
  }

  override async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const client = this.client;
    this.client = null;
    this.connected = false;
    await client?.end().catch(() => {});
    await super.close();
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url });
    client.on('notification', (msg) => {
      if (this.dropShare > 0 && Math.random() < this.dropShare) return;
      const seq = Number(msg.payload);
      this.ring(Number.isFinite(seq) ? seq : null);
    });
    const lost = (err?: Error) => {
      if (this.client !== client) return;
      this.client = null;
      this.connected = false;
      client.end().catch(() => {});
      if (this.closed) return;
      this.emitter.emit('connection', false);
      this.log.warn({ err: err?.message }, 'doorbell connection lost; reconnecting');
      this.scheduleReconnect();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    await client.connect();
    await client.query(`LISTEN "${this.channel}"`);
    if (this.closed) {
      await client.end();
      return;
    }
    this.client = client;
    this.connected = true;
    this.retryMs = 100;
    this.emitter.emit('connection', true);
    this.ring(null);
  }

  private scheduleReconnect(): void {
    const delay = this.retryMs * (0.5 + Math.random());
    this.retryMs = Math.min(this.retryMs * 2, 5000);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect().catch((err: Error) => {
        if (this.closed) return;
        this.log.warn({ err: err.message }, 'doorbell reconnect failed');
        this.scheduleReconnect();
      });
    }, delay);
    this.timer.unref();
  }
}
