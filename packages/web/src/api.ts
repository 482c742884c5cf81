import { ApiError, apiRequest, retryDelay } from '@concord/client';
import type { Session } from './session.js';

export { ApiError };

type Params = Record<string, unknown>;

export const authHeader = (s: Session) => `Basic ${btoa(`${s.email}:${s.apiKey}`)}`;

/** One API call with the session's Basic auth; resolves with the success body or throws ApiError. */
export function call<T = Record<string, unknown>>(
  session: Session | null,
  method: string,
  path: string,
  params: Params = {},
): Promise<T> {
  const who = session ? { email: session.email, apiKey: session.apiKey } : {};
  return apiRequest<T>({ baseUrl: location.origin, ...who }, method, path, params);
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
      const wait = retryDelay(err, attempt + 1, 250, 10_000);
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

/** Sends one file as `multipart/form-data` (field `file`); resolves with the success body or throws ApiError. */
export async function sendFile<T = Record<string, unknown>>(
  session: Session,
  path: string,
  file: File,
): Promise<T> {
  const form = new FormData();
  form.append('file', file, file.name);
  const res = await fetch(`/api/v1${path}`, {
    method: 'POST',
    headers: { authorization: authHeader(session) },
    body: form,
  });
  const body = (await res.json().catch(() => ({}))) as { result?: string; code?: string; msg?: string };
  if (body.result !== 'success')
    throw new ApiError(
      res.status,
      body.code ?? 'BAD_RESPONSE',
      body.msg ?? `The server answered ${res.status}`,
    );
  return body as T;
}
