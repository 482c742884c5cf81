import { errorCatalogue } from '../../src/errors.js';
import type { RawRequest, RawResponse } from '../api/raw-request.js';
import { basic, form, rawRequest } from '../api/raw-request.js';
import type { FuzzCase } from './model.js';
import { BOUNDARY } from './model.js';

/** Credentials the runner authenticates with, by actor name; refreshed when keys may have changed. */
export type Keyring = Map<string, { id: number; email: string; apiKey: string }>;

function multipart(params: [string, string][]): string {
  const parts = params.map(
    ([k, v]) => `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`,
  );
  return `${parts.join('')}--${BOUNDARY}--\r\n`;
}

/** A JSON object text that keeps duplicate keys, with each value a string or (typed) inline JSON. */
function jsonObject(params: [string, string][], typed: boolean): string {
  const value = (v: string) => {
    if (!typed) return JSON.stringify(v);
    try {
      JSON.parse(v);
      return v;
    } catch {
      return JSON.stringify(v);
    }
  };
  return `{${params.map(([k, v]) => `${JSON.stringify(k)}:${value(v)}`).join(',')}}`;
}

/** Turns a generated case into bytes on the wire. */
export function encode(c: FuzzCase, keys: Keyring): RawRequest {
  const headers: Record<string, string> = {};
  const a = c.auth;
  if (a.kind === 'as' || a.kind === 'wrongKey') {
    const k = keys.get(a.actor)!;
    headers.authorization = basic(k.email, a.kind === 'as' ? k.apiKey : `${k.apiKey.slice(1)}x`);
  } else if (a.kind === 'raw') headers.authorization = a.header;

  let path = `/api/v1${c.path}`;
  let body: string | undefined;
  let type: string | undefined;
  switch (c.encoding) {
    case 'query':
      if (c.params.length > 0) path += `?${form(c.params)}`;
      break;
    case 'form':
    case 'text':
    case 'odd':
      body = form(c.params);
      type = {
        form: 'application/x-www-form-urlencoded',
        text: 'text/plain',
        odd: 'application/octet-stream',
      }[c.encoding];
      break;
    case 'multipart':
      body = multipart(c.params);
      type = `multipart/form-data; boundary=${BOUNDARY}`;
      break;
    case 'json':
    case 'jsonTyped':
      body = jsonObject(c.params, c.encoding === 'jsonTyped');
      type = 'application/json';
      break;
    case 'split': {
      const half = Math.ceil(c.params.length / 2);
      if (half > 0) path += `?${form(c.params.slice(0, half))}`;
      body = form(c.params.slice(half));
      type = 'application/x-www-form-urlencoded';
      break;
    }
  }
  if (c.rawBody !== undefined) body = c.rawBody;
  if (c.contentType !== undefined) type = c.contentType;
  if (type !== undefined && body !== undefined) headers['content-type'] = type;
  return { method: c.method, path, headers, body };
}

/**
 * What is wrong with a response, or null: never a 5xx; every API answer is JSON in Zulip's
 * shape, errors with a message and a catalogued code whose status is the one sent.
 */
export function responseProblem(method: string, res: RawResponse): string | null {
  if (res.status >= 500) return `server error ${res.status}: ${res.text.slice(0, 300)}`;
  if (method === 'HEAD') return null;
  const b = res.json;
  if (b === undefined || b === null || typeof b !== 'object') return `not JSON: ${res.text.slice(0, 200)}`;
  if (res.status >= 400) {
    if (b.result !== 'error') return `error without result:'error': ${res.text.slice(0, 200)}`;
    if (typeof b.msg !== 'string' || b.msg === '') return `error without msg: ${res.text.slice(0, 200)}`;
    if (typeof b.code !== 'string' || !(b.code in errorCatalogue))
      return `error with an uncatalogued code: ${res.text.slice(0, 200)}`;
    const status = errorCatalogue[b.code as keyof typeof errorCatalogue];
    if (status !== res.status) return `code ${b.code} is ${status} but ${res.status} was sent`;
  } else if (res.status === 200 && b.result !== 'success') return `200 without result:'success'`;
  return null;
}

/** Outcome counts and the first problems of a run. */
export interface RunReport {
  sent: number;
  byStatus: Map<number, number>;
  byCode: Map<string, number>;
  problems: { index: number; problem: string; fuzzCase: FuzzCase }[];
}

/**
 * Sends `cases` with `concurrency` requests in flight and checks every response. A connection
 * failure or timeout counts as a problem (a crash or a hang), as does any bad response.
 */
export async function runCases(
  baseUrl: string,
  cases: FuzzCase[],
  keys: Keyring,
  concurrency: number,
  refreshKeys: () => Promise<void>,
): Promise<RunReport> {
  const report: RunReport = { sent: 0, byStatus: new Map(), byCode: new Map(), problems: [] };
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const index = next++;
      const c = cases[index]!;
      let problem: string | null;
      try {
        const res = await rawRequest(baseUrl, encode(c, keys));
        report.byStatus.set(res.status, (report.byStatus.get(res.status) ?? 0) + 1);
        const code = res.json?.code;
        if (typeof code === 'string') report.byCode.set(code, (report.byCode.get(code) ?? 0) + 1);
        problem = responseProblem(c.method, res);
        // Regenerating and deactivating replace API keys: keep the keyring current, or every later
        // request as that actor would fail to authenticate and the run would test little.
        if (
          res.status === 200 &&
          c.method !== 'GET' &&
          /^\/users\/[^/]+(\/api_key\/regenerate)?$/.test(c.path)
        )
          await refreshKeys();
      } catch (err) {
        problem = `no response: ${(err as Error).message}`;
      }
      report.sent += 1;
      if (problem) report.problems.push({ index, problem, fuzzCase: c });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return report;
}
