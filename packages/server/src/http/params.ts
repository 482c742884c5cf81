import type { FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { ConcordError, fail } from '../errors.js';

/**
 * Zulip's request encoding: every parameter is a string; non-string values (numbers, booleans,
 * arrays, objects) are JSON inside it. Parameters may arrive in the query string or the body, for
 * any method (zulip-js sends PATCH and DELETE parameters in the query string), urlencoded,
 * multipart or JSON. A parser turns one raw value into a typed one or throws a message that names
 * the parameter.
 */
export interface Param<T, R extends boolean = boolean> {
  readonly required: R;
  parse(raw: string, name: string): T;
}

type Parsed<S extends Record<string, Param<unknown>>> = {
  [K in keyof S]: S[K] extends Param<infer T, infer R> ? (R extends true ? T : T | undefined) : never;
};

const invalid = (name: string, why: string) => new ConcordError('BAD_REQUEST', `Invalid ${name}: ${why}`);

function parseJson(raw: string, name: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    throw new ConcordError('BAD_REQUEST', `Argument "${name}" is not valid JSON.`);
  }
}

class ParamBuilder<T> implements Param<T, true> {
  readonly required = true as const;
  constructor(readonly parse: (raw: string, name: string) => T) {}
  /** The same parameter, but absent is allowed (and parsed as undefined). */
  optional(): Param<T, false> {
    return { required: false, parse: this.parse };
  }
}

const MAX_INT = 2 ** 31 - 1;

function toInt(value: unknown, name: string): number {
  const n = typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n))
    throw new ConcordError('BAD_REQUEST', `${name} is not an integer`);
  if (Math.abs(n) > MAX_INT) throw invalid(name, `must be between ${-MAX_INT} and ${MAX_INT}`);
  return n;
}

/** Parameter types. */
export const param = {
  /** A string of at most `max` characters (default 64 KiB). */
  string: (max = 65536) =>
    new ParamBuilder<string>((raw, name) => {
      if (raw.length > max) throw invalid(name, `longer than ${max} characters`);
      return raw;
    }),
  int: () =>
    new ParamBuilder<number>((raw, name) =>
      toInt(raw.trim().startsWith('"') ? parseJson(raw, name) : raw, name),
    ),
  bool: () =>
    new ParamBuilder<boolean>((raw, name) => {
      const v = raw.trim().toLowerCase();
      if (v === 'true') return true;
      if (v === 'false') return false;
      throw new ConcordError('BAD_REQUEST', `${name} is not a boolean`);
    }),
  /** A JSON array of integers, or (as zulip-js sends in GET queries) a comma-joined list. */
  intList: (maxItems = 10_000) =>
    new ParamBuilder<number[]>((raw, name) => {
      const value = raw.trim().startsWith('[')
        ? parseJson(raw, name)
        : raw.split(',').filter((s) => s.trim() !== '');
      if (!Array.isArray(value)) throw new ConcordError('BAD_REQUEST', `${name} is not a list`);
      if (value.length > maxItems) throw invalid(name, `more than ${maxItems} items`);
      return value.map((v, i) => toInt(v, `${name}[${i}]`));
    }),
  /** A JSON value matching a zod schema; the error names the parameter and the offending path. */
  json: <T>(schema: z.ZodType<T>) =>
    new ParamBuilder<T>((raw, name) => {
      const result = schema.safeParse(parseJson(raw, name));
      if (result.success) return result.data;
      const issue = result.error.issues[0]!;
      const where = issue.path.length > 0 ? `${name}[${issue.path.map(String).join('][')}]` : name;
      throw new ConcordError('BAD_REQUEST', `Invalid ${where}: ${issue.message}`);
    }),
  /** One of the given strings. */
  oneOf: <T extends string>(...values: T[]) =>
    new ParamBuilder<T>((raw, name) => {
      if (!(values as string[]).includes(raw)) throw invalid(name, `must be one of ${values.join(', ')}`);
      return raw as T;
    }),
};

/** A JSON body's non-string value back as JSON text; too deep a value is the client's error, not a 500. */
function stringifyBounded(name: string, value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch {
    // V8's JSON.stringify recurses, and a 1 MiB body can nest arrays 500,000 deep.
    throw invalid(name, 'nested too deeply');
  }
}

function isEmptyObject(o: unknown): boolean {
  if (o === undefined || o === null) return true;
  if (typeof o !== 'object') return false;
  for (const _ in o) return false;
  return true;
}

const NONE: ReadonlyMap<string, string> = new Map();

/** Raw string parameters from the query string and the body, body winning. */
export function rawParams(req: FastifyRequest): ReadonlyMap<string, string> {
  // Most reads carry no parameters at all.
  if (isEmptyObject(req.body) && isEmptyObject(req.query)) return NONE;
  const out = new Map<string, string>();
  const add = (source: unknown) => {
    if (!source || typeof source !== 'object' || Buffer.isBuffer(source)) return;
    for (const [key, value] of Object.entries(source as Record<string, unknown>)) {
      if (value === undefined) continue;
      if (typeof value === 'string') out.set(key, value);
      else if (Array.isArray(value) && value.every((v) => typeof v === 'string'))
        out.set(key, value[value.length - 1] ?? '');
      else if (!Buffer.isBuffer(value)) out.set(key, stringifyBounded(key, value));
    }
  };
  add(req.query);
  add(req.body);
  return out;
}

/** Parses the request's parameters against `spec`; unknown names are returned as `ignored`. */
export function parseParams<S extends Record<string, Param<unknown>>>(
  req: FastifyRequest,
  spec: S,
): { params: Parsed<S>; ignored: string[] } {
  const raw = rawParams(req);
  const params: Record<string, unknown> = {};
  if (raw.size === 0) {
    for (const name in spec) if (spec[name]!.required) throw fail.missing(name);
    return { params: params as Parsed<S>, ignored: [] };
  }
  for (const [name, p] of Object.entries(spec)) {
    const value = raw.get(name);
    if (value === undefined) {
      if (p.required) throw fail.missing(name);
      continue;
    }
    // No text column takes NUL (PostgreSQL rejects it outright), and no valid value contains one.
    if (value.includes('\u0000')) throw invalid(name, 'contains a NUL character');
    params[name] = p.parse(value, name);
  }
  const ignored = [...raw.keys()].filter((k) => !Object.hasOwn(spec, k));
  return { params: params as Parsed<S>, ignored };
}
