import type { FastifyReply } from 'fastify';
import { ConcordError } from '../errors.js';

/** Sends Zulip's success shape: `{result: "success", msg: "", ...body}`. */
export function success(
  reply: FastifyReply,
  body: Record<string, unknown> = {},
  ignored: string[] = [],
): FastifyReply {
  const payload: Record<string, unknown> = { result: 'success', msg: '', ...body };
  if (ignored.length > 0) payload.ignored_parameters_unsupported = ignored;
  return reply.code(200).send(payload);
}

/** Sends Zulip's error shape for a ConcordError: `{result: "error", msg, code, ...extra}`. */
export function sendError(reply: FastifyReply, err: ConcordError): FastifyReply {
  if (err.retryAfter !== undefined) reply.header('Retry-After', String(Math.ceil(err.retryAfter)));
  if (err.code === 'UNAUTHORIZED' || err.code === 'INVALID_API_KEY' || err.code === 'USER_DEACTIVATED')
    reply.header('WWW-Authenticate', 'Basic realm="zulip"');
  const body: Record<string, unknown> = { result: 'error', msg: err.message, code: err.code, ...err.extra };
  if (err.code === 'RATE_LIMIT_HIT' && err.retryAfter !== undefined) body['retry-after'] = err.retryAfter;
  return reply.code(err.status).send(body);
}

/** A path parameter that must be a positive integer id. */
export function pathId(params: unknown, name: string): number {
  const raw = (params as Record<string, string | undefined>)[name] ?? '';
  if (!/^\d{1,10}$/.test(raw) || Number(raw) > 2 ** 31 - 1)
    throw new ConcordError('BAD_REQUEST', `Invalid ${name}: '${raw}' is not an id`);
  return Number(raw);
}
