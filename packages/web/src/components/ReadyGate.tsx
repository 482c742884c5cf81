import { useCallback, useEffect, useRef, useState } from 'react';
import { backoffDelay } from '@concord/client';

/** What `/readyz` and the status stream say (server: readiness/readiness.ts). */
export interface ReadinessStatus {
  status: 'warming' | 'ready' | 'unready' | 'failed';
  phase: string;
  node?: string;
  progress?: { loaded: Record<string, number>; total: Record<string, number> };
  cursor?: number | null;
  head?: number | null;
  elapsedMs?: number;
  reason?: string | null;
}

const STREAM = '/api/v1/concord/status/stream';

const phaseText: Record<string, string> = {
  starting: 'Starting',
  migrating: 'Updating the database',
  loading: 'Loading the workspace into memory',
  'catching-up': 'Catching up with recent changes',
  unready: 'Temporarily unavailable',
  failed: 'Start-up failed',
};

/**
 * Shows the server's warm-up progress until it serves data, then its children, without a reload.
 * Progress comes from the status stream (Server-Sent Events: the status at once, then every change,
 * including the moment the node is ready). Where the stream cannot be had (a proxy that refuses it,
 * the server not answering yet), `/readyz` is polled with jittered exponential backoff. "Retry now"
 * asks again at once. Once open, the gate stays open: later outages are the data requests' concern
 * (they retry on 503), so the app is never unmounted under a person's feet.
 */
export function ReadyGate({ children }: { children: React.ReactNode }) {
  const [ready, setReady] = useState(false);
  const [status, setStatus] = useState<ReadinessStatus | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const attempt = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const source = useRef<EventSource | null>(null);
  const done = useRef(false);

  const stopPolling = () => {
    if (timer.current) clearTimeout(timer.current);
    timer.current = null;
  };

  const seen = useCallback((s: ReadinessStatus) => {
    setStatus(s);
    setProblem(null);
    if (s.status === 'ready' && !done.current) {
      done.current = true;
      source.current?.close();
      stopPolling();
      setReady(true);
    }
  }, []);

  // Polling: the fallback, and the first answer when the stream cannot connect.
  const poll = useCallback(async () => {
    stopPolling();
    if (done.current) return;
    try {
      // 503 is the expected answer while warming; its body is the same status.
      const res = await fetch('/readyz', { cache: 'no-store' });
      seen((await res.json()) as ReadinessStatus);
    } catch (err) {
      setProblem(`The server does not answer (${err instanceof Error ? err.message : String(err)}).`);
    }
    if (done.current) return;
    timer.current = setTimeout(() => void poll(), Math.max(250, backoffDelay(++attempt.current, 250, 8_000)));
  }, [seen]);

  const follow = useCallback(() => {
    source.current?.close();
    if (done.current) return;
    if (typeof EventSource === 'undefined') return void poll();
    const es = new EventSource(STREAM);
    source.current = es;
    es.addEventListener('status', (m) => {
      attempt.current = 0;
      stopPolling();
      try {
        seen(JSON.parse((m as MessageEvent<string>).data) as ReadinessStatus);
      } catch {
        /* not a status: ignored */
      }
    });
    es.onerror = () => {
      // The browser reconnects by itself (the server asks for 1 s) unless the answer was not a
      // stream at all; then, and while it reconnects, polling keeps the page informed.
      if (es.readyState === EventSource.CLOSED) source.current = null;
      if (!timer.current || es.readyState === EventSource.CLOSED) void poll();
    };
  }, [poll, seen]);

  useEffect(() => {
    follow();
    return () => {
      source.current?.close();
      stopPolling();
    };
  }, [follow]);

  if (ready) return <>{children}</>;
  const loaded = status?.progress?.loaded ?? {};
  const total = status?.progress?.total ?? {};
  return (
    <main className="loading" aria-busy="true" data-testid="warmup">
      <h1>Concord is starting</h1>
      <p className="loading-phase" role="status" data-testid="warmup-phase">
        {status ? (phaseText[status.phase] ?? status.phase) : 'Waiting for the server…'}
        {status?.reason ? `: ${status.reason}` : ''}
      </p>
      {Object.keys(total).length > 0 && (
        <ul className="loading-progress" data-testid="warmup-progress">
          {Object.entries(total).map(([kind, of]) => {
            const n = loaded[kind] ?? 0;
            return (
              <li key={kind}>
                <label>
                  {`${kind}: ${n.toLocaleString('en')} of ${of.toLocaleString('en')}`}
                  <progress value={n} max={Math.max(1, of)} />
                </label>
              </li>
            );
          })}
        </ul>
      )}
      {status?.phase === 'catching-up' && status.cursor != null && status.head != null && (
        <p>
          At change {status.cursor.toLocaleString('en')} of {status.head.toLocaleString('en')}
        </p>
      )}
      {status?.elapsedMs !== undefined && (
        <p className="muted">{(status.elapsedMs / 1000).toFixed(1)} s since the server started</p>
      )}
      {problem && <p role="alert">{problem}</p>}
      <button
        type="button"
        onClick={() => {
          attempt.current = 0;
          follow();
          void poll();
        }}
      >
        Retry now
      </button>
    </main>
  );
}
