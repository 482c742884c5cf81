import { ApiError, backoffDelay } from '@concord/client';
import type { Session } from './session.js';

export { ApiError };

type Params = Record<string, unknown>;

const encode = (params: Params) =>
  new URLSearchParams(
    Object.entries(params)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]): [string, string] => [k, typeof v === 'string' ? v : JSON.stringify(v)]),
  );

export const authHeader = (s: Session) => `Basic ${btoa(`${s.email}:${s.apiKey}`)}`;

/** One API call with the session's Basic auth; resolves with the success body or throws ApiError. */
export async function call<T = Record<string, unknown>>(
  session: Session | null,
  method: string,
  path: string,
  params: Params = {},
): Promise<T> {
  const headers: Record<string, string> = {};
  if (session) headers.authorization = authHeader(session);
  const query = method === 'GET' ? `?${encode(params)}` : '';
  const res = await fetch(`/api/v1${path}${query}`, {
    method,
    headers,
    body: method === 'GET' ? undefined : encode(params),
  });
  let body: { result?: string; code?: string; msg?: string } = {};
  try {
    body = (await res.json()) as typeof body;
  } catch {
    throw new ApiError(res.status, 'BAD_RESPONSE', `The server answered ${res.status} without JSON`);
  }
  if (body.result !== 'success') {
    const retry = res.headers.get('retry-after');
    throw new ApiError(
      res.status,
      body.code ?? 'BAD_REQUEST',
      body.msg ?? res.statusText,
      retry ? Number(retry) : undefined,
    );
  }
  return body as T;
}

/**
 * `call`, retried while the server answers 503 (warming up, or its database is away) or the network
 * fails, with jittered exponential backoff; `onRetry` says when the next try is.
 */
export async function callWithRetry<T = Record<string, unknown>>(
  session: Session | null,
  method: string,
  path: string,
  params: Params = {},
  opts: { attempts?: number; onRetry?(inMs: number, err: unknown): void } = {},
): Promise<T> {
  const attempts = opts.attempts ?? 6;
  for (let attempt = 0; ; attempt++) {
    try {
      return await call<T>(session, method, path, params);
    } catch (err) {
      const retryable = !(err instanceof ApiError) || err.status === 503 || err.status === 429;
      if (!retryable || attempt + 1 >= attempts) throw err;
      const wait =
        err instanceof ApiError && err.retryAfter
          ? err.retryAfter * 1000 * (0.5 + Math.random() / 2)
          : backoffDelay(attempt + 1, 250, 10_000);
      opts.onRetry?.(wait, err);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** A readable sentence for an error, whatever threw it. */
export function describeError(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) return `Could not reach the server (${err.message})`;
  return String(err);
}
