import { useCallback, useEffect, useRef, useState } from 'react';
import { backoffDelay } from '@concord/client';

interface Progress {
  status?: string;
  phase?: string;
  elapsed_ms?: number;
  counts?: Record<string, number>;
  [key: string]: unknown;
}

/**
 * Shows the server's warm-up progress until `/readyz` says it serves data, then its children. It
 * polls `/readyz` with jittered backoff and, while the server warms up, follows its status stream;
 * "Retry now" asks at once.
 */
export function ReadyGate({ children }: { children: React.ReactNode }) {
  const [ready, setReady] = useState(false);
  const [progress, setProgress] = useState<Progress | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const attempt = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);

  const source = useRef<EventSource | null>(null);

  const check = useCallback(async () => {
    if (timer.current) clearTimeout(timer.current);
    try {
      const res = await fetch('/readyz', { cache: 'no-store' });
      const body = (await res.json().catch(() => ({}))) as Progress;
      if (res.ok) {
        source.current?.close();
        setReady(true);
        return;
      }
      setProgress(body);
      setProblem(null);
      // While warming up, the status stream pushes progress and the moment the node is ready.
      if (!source.current && typeof EventSource !== 'undefined') {
        const es = new EventSource('/api/v1/concord/status/stream');
        es.onmessage = (m) => {
          try {
            const p = JSON.parse(m.data as string) as Progress;
            setProgress(p);
            if (p.status === 'ready') {
              es.close();
              setReady(true);
            }
          } catch {
            /* a heartbeat or a message of another shape */
          }
        };
        // Polling goes on regardless; a broken stream is closed rather than retried.
        es.onerror = () => es.close();
        source.current = es;
      }
    } catch (err) {
      setProblem(`The server does not answer (${err instanceof Error ? err.message : String(err)}).`);
    }
    const wait = Math.max(200, backoffDelay(attempt.current++, 250, 5_000));
    timer.current = setTimeout(() => void check(), wait);
  }, []);

  useEffect(() => {
    void check();
    return () => {
      source.current?.close();
      if (timer.current) clearTimeout(timer.current);
    };
  }, [check]);

  if (ready) return <>{children}</>;
  const counts = progress?.counts ?? {};
  return (
    <main className="loading" aria-busy="true" aria-live="polite">
      <h1>Concord is starting</h1>
      <p className="loading-phase" data-testid="warmup-phase">
        {progress?.phase ? `Warming up: ${progress.phase}` : 'Waiting for the server…'}
      </p>
      {Object.keys(counts).length > 0 && (
        <ul className="loading-counts">
          {Object.entries(counts).map(([k, v]) => (
            <li key={k}>
              {k}: {v}
            </li>
          ))}
        </ul>
      )}
      {progress?.elapsed_ms !== undefined && <p>{Math.round(progress.elapsed_ms / 100) / 10} s elapsed</p>}
      {problem && <p role="alert">{problem}</p>}
      <button
        type="button"
        onClick={() => {
          attempt.current = 0;
          void check();
        }}
      >
        Retry now
      </button>
    </main>
  );
}
