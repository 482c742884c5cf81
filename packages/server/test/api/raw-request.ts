import { request } from 'node:http';
import { zulipContract } from '../support/openapi.js';

/** One request exactly as the test wants it on the wire: any method, path, headers and body bytes. */
export interface RawRequest {
  method: string;
  /** Path and query string, sent verbatim (not re-encoded). */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

/** What came back; `json` is the parsed body, or undefined when it is not JSON. */
export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- bodies are checked by the assertions
  json: any;
}

/** Basic credentials as a header value, built from any strings (the fuzzer passes garbage). */
export const basic = (email: string, apiKey: string): string =>
  `Basic ${Buffer.from(`${email}:${apiKey}`).toString('base64')}`;

/**
 * Sends a request with node:http rather than fetch, so that a test controls every byte: fetch
 * normalises methods, rejects some header values and re-encodes paths. Rejects only when the
 * connection fails or no response comes within `timeoutMs`, which a test must treat as a crash.
 */
export function rawRequest(baseUrl: string, req: RawRequest, timeoutMs = 15_000): Promise<RawResponse> {
  const url = new URL(baseUrl);
  const body = req.body === undefined ? undefined : Buffer.from(req.body);
  const headers: Record<string, string> = { ...req.headers };
  if (body !== undefined) headers['content-length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const r = request(
      { host: url.hostname, port: url.port, method: req.method, path: req.path, headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          // Every answer of a Zulip endpoint, success or error, must match Zulip's OpenAPI description.
          if (req.path.startsWith('/api/v1/') && req.method !== 'HEAD') {
            try {
              zulipContract().validateResponse(
                req.method,
                req.path.slice('/api/v1'.length),
                res.statusCode ?? 0,
                json,
              );
            } catch (err) {
              reject(err as Error);
              return;
            }
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    r.setTimeout(timeoutMs, () => r.destroy(new Error(`no response within ${timeoutMs} ms`)));
    r.on('error', reject);
    r.end(body);
  });
}

/** `application/x-www-form-urlencoded` encoding of string parameters, duplicates allowed. */
export const form = (pairs: [string, string][]): string => new URLSearchParams(pairs).toString();
