import { useEffect, useState } from 'react';

interface Probe {
  status: number | null;
  body: unknown;
}

async function probe(path: string): Promise<Probe> {
  try {
    const res = await fetch(path, { cache: 'no-store' });
    return { status: res.status, body: await res.json().catch(() => null) };
  } catch (err) {
    return { status: null, body: String(err) };
  }
}

/** Readiness and what the server says of itself, refreshed every few seconds. */
export function Status() {
  const [ready, setReady] = useState<Probe | null>(null);
  useEffect(() => {
    let stop = false;
    const tick = async () => {
      const r = await probe('/readyz');
      if (!stop) setReady(r);
    };
    void tick();
    const timer = setInterval(() => void tick(), 3000);
    return () => {
      stop = true;
      clearInterval(timer);
    };
  }, []);
  return (
    <section aria-labelledby="status-title">
      <h1 id="status-title">Server status</h1>
      <h2>Readiness</h2>
      {ready === null ? (
        <p>Asking the server…</p>
      ) : (
        <>
          <p data-testid="readiness">
            {ready.status === 200
              ? 'Ready'
              : ready.status === null
                ? 'Unreachable'
                : `Not ready (${ready.status})`}
          </p>
          <pre className="json">{JSON.stringify(ready.body, null, 2)}</pre>
        </>
      )}
    </section>
  );
}
