import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';
import addFormatsPlugin from 'ajv-formats';
import { parse } from 'yaml';
import { concordOpenApi } from '../../src/http/openapi.js';

/**
 * Validates Concord's answers against Zulip's published OpenAPI description
 * (`reference/zulip-openapi.yaml`, kept in the repository), with Ajv — the contract the
 * Zulip-compatible endpoints are held to in every test that goes through `api()`.
 */

const specPath = fileURLToPath(new URL('../../../../reference/zulip-openapi.yaml', import.meta.url));

/**
 * Concord's own endpoints under /api/v1, which Zulip's description does not have; they are
 * documented in Concord's OpenAPI document instead (GET /openapi.json).
 */
export const concordOwnEndpoints: RegExp[] = [
  /^\/users\/me\/api_key\/regenerate$/,
  /^\/concord\//,
  /^\/events\/(stream|socket)$/,
];

type Json = Record<string, unknown>;
const SPEC_ID = 'zulip';

/**
 * OpenAPI 3.0 to JSON Schema for Ajv: `nullable: true` becomes a union with null, references
 * point into the registered document, and documentation-only keywords (`example`, `x-*`) go.
 */
function convert(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(convert);
  if (!node || typeof node !== 'object') return node;
  const out: Json = {};
  for (const [key, value] of Object.entries(node as Json)) {
    if (key === 'example' || key === 'examples' || key.startsWith('x-') || key === 'nullable') continue;
    if (key === '$ref' && typeof value === 'string' && value.startsWith('#/'))
      out.$ref = `${SPEC_ID}${value}`;
    else out[key] = convert(value);
  }
  if ((node as Json).nullable === true) {
    if (typeof out.type === 'string') out.type = [out.type, 'null'];
    else return { anyOf: [out, { type: 'null' }] };
    if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...out.enum, null];
  }
  return out;
}

interface Operation {
  template: string;
  pattern: RegExp;
  params: string[];
  responses: Map<string, Json | null>;
}

class ZulipContract {
  private readonly ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
  private readonly spec: Json;
  private readonly operations = new Map<string, Operation[]>();
  private readonly compiled = new WeakMap<object, ValidateFunction>();
  private readonly anyError: ValidateFunction;
  private readonly eventBranches: { type: string[]; op: string[] | null; validate: ValidateFunction }[] = [];

  constructor() {
    if (!existsSync(specPath))
      throw new Error(`Zulip's OpenAPI description is missing at ${specPath}; the API tests need it`);
    this.spec = parse(readFileSync(specPath, 'utf8')) as Json;
    addFormatsPlugin.default(this.ajv);
    const components = this.spec.components as Json;
    this.ajv.addSchema({ $id: SPEC_ID, components: convert(components) } as Json);

    const paths = this.spec.paths as Record<string, Record<string, Json>>;
    for (const [template, item] of Object.entries(paths)) {
      const params = [...template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!);
      const pattern = new RegExp(`^${template.replace(/\{[^}]+\}/g, '([^/]+)')}$`);
      for (const [method, op] of Object.entries(item)) {
        if (!op || typeof op !== 'object' || !('responses' in op)) continue;
        const responses = new Map<string, Json | null>();
        for (const [status, response] of Object.entries(op.responses as Record<string, Json>))
          responses.set(status, this.responseSchema(response));
        const list = this.operations.get(method.toUpperCase()) ?? [];
        list.push({ template, pattern, params, responses });
        this.operations.set(method.toUpperCase(), list);
      }
    }

    // Any endpoint may answer any of Zulip's documented error shapes; the per-endpoint lists
    // are examples, not the whole set.
    const errorNames = Object.keys(components.schemas as Json).filter(
      (n) => /Error$/.test(n) && !n.endsWith('Base') && !n.startsWith('rest_error_handling'),
    );
    this.anyError = this.ajv.compile({
      anyOf: errorNames.map((n) => ({ $ref: `${SPEC_ID}#/components/schemas/${n}` })),
    });

    const events = (components.schemas as Json).get_events_200_response_allOf_events_inner as {
      oneOf: Json[];
    };
    for (const branch of events.oneOf) {
      const { type, op } = this.discriminators(branch);
      this.eventBranches.push({ type, op, validate: this.ajv.compile(convert(branch) as Json) });
    }
  }

  /** The JSON schema of one documented response, following `#/components/responses/…`. */
  private responseSchema(response: Json): Json | null {
    let r = response;
    while (typeof r.$ref === 'string') {
      const name = r.$ref.split('/').pop()!;
      r = ((this.spec.components as Json).responses as Record<string, Json>)[name]!;
    }
    const content = r.content as Record<string, { schema?: Json }> | undefined;
    const schema = content?.['application/json']?.schema;
    return schema ? (convert(schema) as Json) : null;
  }

  /** The `type` and `op` values an event branch accepts (they sit in nested allOf/enum). */
  private discriminators(branch: Json): { type: string[]; op: string[] | null } {
    const schemas = (this.spec.components as Json).schemas as Record<string, Json>;
    const enums = (node: unknown): string[] => {
      if (!node || typeof node !== 'object') return [];
      const n = node as Json;
      if (typeof n.$ref === 'string') return enums(schemas[n.$ref.split('/').pop()!]);
      if (Array.isArray(n.enum)) return n.enum as string[];
      return Array.isArray(n.allOf) ? n.allOf.flatMap(enums) : [];
    };
    const props = (node: Json): Json => {
      if (typeof node.$ref === 'string') return props(schemas[node.$ref.split('/').pop()!]!);
      const own = (node.properties ?? {}) as Json;
      const inherited = Array.isArray(node.allOf)
        ? Object.assign({}, ...node.allOf.map((p: Json) => props(p)))
        : {};
      return { ...inherited, ...own };
    };
    const p = props(branch);
    const op = enums(p.op);
    return { type: enums(p.type), op: op.length > 0 ? op : null };
  }

  private compile(schema: Json): ValidateFunction {
    let fn = this.compiled.get(schema);
    if (!fn) this.compiled.set(schema, (fn = this.ajv.compile(schema)));
    return fn;
  }

  /** The documented operation for a concrete path: literal segments beat parameters; ids are numeric. */
  private operation(method: string, path: string): Operation | null {
    const candidates = (this.operations.get(method) ?? [])
      .map((op) => ({ op, match: op.pattern.exec(path) }))
      .filter((c) => c.match !== null);
    if (candidates.length === 0) return null;
    const score = ({ op, match }: (typeof candidates)[number]) =>
      op.params.length * 10 -
      op.params.filter((name, i) => /id$/.test(name) === /^\d+$/.test(match![i + 1]!)).length;
    candidates.sort((a, b) => score(a) - score(b));
    return candidates[0]!.op;
  }

  /** Throws, naming the schema errors and the body, when a response breaks Zulip's description. */
  validateResponse(method: string, path: string, status: number, body: unknown): void {
    const bare = path.split('?')[0]!;
    if (concordOwnEndpoints.some((re) => re.test(bare))) return;
    // Concord's own event types travel in Zulip's events array: checked against Concord's schema,
    // the rest of the response against Zulip's.
    const events = (body as { events?: unknown } | null)?.events;
    if (
      Array.isArray(events) &&
      events.some((e) => String((e as { type?: unknown }).type).startsWith('concord_'))
    ) {
      for (const e of events)
        if (String((e as { type?: unknown }).type).startsWith('concord_')) this.validateEvent(e);
      body = {
        ...(body as object),
        events: events.filter((e) => !String((e as { type?: unknown }).type).startsWith('concord_')),
      };
    }
    const op = this.operation(method, bare);
    const isError = status >= 400;
    if (!op) {
      // An unknown endpoint may only answer with an error (Zulip's shape); a success must be documented.
      if (isError && this.anyError(body)) return;
      throw new Error(
        `${method} ${bare} is not in Zulip's OpenAPI description (answered ${status}): ${JSON.stringify(body)}`,
      );
    }
    const documented = op.responses.get(String(status));
    if (documented) {
      const fn = this.compile(documented);
      if (fn(body)) return;
      if (!isError || !this.anyError(body))
        throw new Error(
          `${method} ${bare} (${op.template}) ${status} does not match Zulip's schema: ` +
            `${this.ajv.errorsText(fn.errors, { separator: '; ' })}\nbody: ${JSON.stringify(body).slice(0, 2000)}`,
        );
      return;
    }
    if (isError) {
      if (this.anyError(body)) return;
      throw new Error(
        `${method} ${bare} ${status} is not one of Zulip's error shapes: ` +
          `${this.ajv.errorsText(this.anyError.errors, { separator: '; ' }).slice(0, 1500)}\nbody: ${JSON.stringify(body)}`,
      );
    }
    throw new Error(
      `${method} ${op.template} has no documented ${status} response: ${JSON.stringify(body).slice(0, 500)}`,
    );
  }

  private concordJobEvent: ValidateFunction | null = null;

  /** Concord's own event types, against Concord's OpenAPI document (src/http/openapi.ts). */
  private validateConcordEvent(event: unknown): void {
    if (!this.concordJobEvent) {
      const doc = concordOpenApi('http://localhost') as { components: unknown };
      this.ajv.addSchema({ $id: 'concord', components: doc.components }, 'concord');
      this.concordJobEvent = this.ajv.getSchema('concord#/components/schemas/ConcordJobEvent')!;
    }
    if (!this.concordJobEvent(event))
      throw new Error(
        `Event concord_job does not match Concord's schema: ${this.ajv.errorsText(this.concordJobEvent.errors)}` +
          `\nevent: ${JSON.stringify(event).slice(0, 2000)}`,
      );
  }

  /** Throws unless the event matches the branch of Zulip's event schema for its type and op. */
  validateEvent(event: unknown): void {
    const e = event as { type?: unknown; op?: unknown };
    if (e.type === 'concord_job') return this.validateConcordEvent(event);
    const branches = this.eventBranches.filter(
      (b) => b.type.includes(String(e.type)) && (b.op === null || b.op.includes(String(e.op))),
    );
    if (branches.length === 0)
      throw new Error(`No Zulip event schema for type ${String(e.type)} op ${String(e.op)}`);
    if (branches.some((b) => b.validate(event))) return;
    throw new Error(
      `Event ${String(e.type)}/${String(e.op)} does not match Zulip's schema: ` +
        branches.map((b) => this.ajv.errorsText(b.validate.errors, { separator: '; ' })).join(' | ') +
        `\nevent: ${JSON.stringify(event).slice(0, 2000)}`,
    );
  }
}

let contract: ZulipContract | null = null;

/** The compiled contract, built once per test file (compiling takes about a second). */
export function zulipContract(): ZulipContract {
  return (contract ??= new ZulipContract());
}
