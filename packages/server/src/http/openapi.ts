import { FEATURE_LEVEL } from './version.js';

/**
 * Concord's own OpenAPI document: the endpoints Zulip does not have. The Zulip-compatible
 * endpoints follow Zulip's published description at the advertised feature level and are listed
 * here by reference only.
 */
export function concordOpenApi(serverUrl: string) {
  const errorShape = {
    type: 'object',
    required: ['result', 'msg', 'code'],
    properties: {
      result: { const: 'error' },
      msg: { type: 'string', description: 'Human-readable; names the field and the limit.' },
      code: { type: 'string', description: 'Stable error code (Zulip codes where the API is Zulip’s).' },
    },
  };
  const readinessShape = {
    type: 'object',
    required: ['status', 'phase', 'node', 'mode', 'progress', 'elapsedMs', 'phases', 'reason'],
    properties: {
      status: { enum: ['warming', 'ready', 'unready', 'failed'] },
      phase: { enum: ['starting', 'migrating', 'loading', 'catching-up', 'ready', 'unready', 'failed'] },
      node: { type: 'string' },
      mode: { enum: ['embedded', 'cluster'] },
      progress: {
        type: 'object',
        properties: {
          loaded: { type: 'object', additionalProperties: { type: 'integer' } },
          total: { type: 'object', additionalProperties: { type: 'integer' } },
        },
      },
      cursor: { type: ['integer', 'null'], description: 'Last change-log seq the node’s cache applied.' },
      head: { type: ['integer', 'null'], description: 'Newest change-log seq the node has seen.' },
      elapsedMs: { type: 'integer' },
      phases: {
        type: 'object',
        additionalProperties: { type: 'integer' },
        description: 'Milliseconds per finished phase.',
      },
      reason: { type: ['string', 'null'] },
    },
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'Concord additions to the Zulip API',
      version: '0.1.0',
      description:
        `Concord speaks Zulip's REST API (feature level ${FEATURE_LEVEL}) for users, channels and ` +
        'subscriptions; see Zulip’s API documentation for those. This document covers what Concord adds.',
    },
    servers: [{ url: serverUrl }],
    components: {
      schemas: {
        Error: errorShape,
        Readiness: readinessShape,
        ...directorySchemas,
        ConcordJobEvent: jobEventShape,
      },
    },
    paths: {
      ...directorySourcePaths(),
      '/livez': {
        get: {
          summary: 'Liveness: 200 while the process runs.',
          responses: {
            '200': { description: 'Alive', content: { 'application/json': { schema: { type: 'object' } } } },
          },
        },
      },
      '/api/v1/events/stream': {
        get: {
          summary: 'An event queue as Server-Sent Events: the events long-poll gives, with the same ids.',
          description:
            'HTTP Basic auth. Each event is `id: <event id>` + `data: <event JSON>`; heartbeats are ' +
            'comments. Resume after a dropped connection with the `Last-Event-ID` header (or ' +
            '`last_event_id`), which acknowledges up to that id; events written but not acknowledged ' +
            'stay queued. A queue that ends or expires during the stream sends `event: error` with the ' +
            'Zulip error (`BAD_EVENT_QUEUE_ID`) and closes.',
          parameters: [
            { name: 'queue_id', in: 'query', required: true, schema: { type: 'string' } },
            { name: 'last_event_id', in: 'query', schema: { type: 'integer' } },
            { name: 'Last-Event-ID', in: 'header', schema: { type: 'integer' } },
          ],
          responses: {
            '200': {
              description: 'The stream',
              content: { 'text/event-stream': { schema: { type: 'string' } } },
            },
            '400': {
              description: 'Unknown queue, or an id older than the queue retains (register again).',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
            },
          },
        },
      },
      '/api/v1/events/socket': {
        get: {
          summary: 'An event queue over WebSocket: `{"events": [...]}` messages with long-poll ids.',
          description:
            'HTTP Basic auth on the upgrade request. The client acknowledges with `{"ack": <event id>}` ' +
            'messages; reconnect with `last_event_id` to resume. Heartbeats are `{"type": "heartbeat"}`. ' +
            'A client whose unsent data exceeds 4 MiB is closed (1013) and resumes from its last id. ' +
            'Errors arrive as one Zulip error message before the close.',
          parameters: [
            { name: 'queue_id', in: 'query', required: true, schema: { type: 'string' } },
            { name: 'last_event_id', in: 'query', schema: { type: 'integer' } },
          ],
          responses: { '101': { description: 'Switching protocols' } },
        },
      },
      '/readyz': {
        get: {
          summary: 'Readiness: 200 once the node serves data, 503 with progress before (and while unready).',
          description:
            'Warm-up phases: migrating, loading (caches loaded at one log position; `progress` counts ' +
            'rows), catching-up (from that position to the head; `cursor`/`head`), then ready. After ' +
            'warm-up a node is `unready` (503, `reason`) while its cache consumer is stalled behind a ' +
            'moving head or the database does not answer. 503 answers carry `Retry-After`.',
          responses: {
            '200': {
              description: 'Ready',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Readiness' } } },
            },
            '503': {
              description: 'Warming up, unready or failed',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Readiness' } } },
            },
          },
        },
      },
      '/api/v1/concord/status/stream': {
        get: {
          summary: 'Server-Sent Events: this node’s readiness now and at every change.',
          description:
            'No authentication (it tells nothing of the workspace). Each message is `event: status` with ' +
            'a Readiness object as `data`: progress while warming up (at most every 100 ms), then the ' +
            'moment the node becomes ready; later, unready/ready transitions. Open while the node warms ' +
            'up, when every data endpoint answers 503.',
          responses: {
            '200': {
              description: 'The stream',
              content: { 'text/event-stream': { schema: { type: 'string' } } },
            },
          },
        },
      },
      '/api/v1/concord/cluster': {
        get: {
          summary:
            'Every node of the cluster with its readiness, cursor, lag and cache statistics, and the ' +
            'background jobs by state.',
          description:
            'HTTP Basic auth. Nodes report every 2 s; `alive` is false after three missed reports. ' +
            '`lag` is the log head minus the node’s cache cursor. `jobs` counts the job rows by ' +
            'state (every state present, zero included); a `running` job whose lease expired is ' +
            'still counted as running until the reaper moves it.',
          responses: {
            '200': {
              description: 'The nodes',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    required: [
                      'result',
                      'msg',
                      'head',
                      'node',
                      'nodes',
                      'jobs',
                      'jobs_unclaimed',
                      'jobs_oldest_running_ms',
                    ],
                    properties: {
                      result: { const: 'success' },
                      msg: { type: 'string' },
                      head: { type: 'integer' },
                      node: { type: 'string', description: 'The node that answered.' },
                      nodes: {
                        type: 'array',
                        items: {
                          type: 'object',
                          properties: {
                            node: { type: 'string' },
                            url: { type: 'string' },
                            alive: { type: 'boolean' },
                            status: { type: 'string' },
                            phase: { type: 'string' },
                            reason: { type: ['string', 'null'] },
                            cursor: { type: ['integer', 'null'] },
                            head: { type: ['integer', 'null'] },
                            lag: { type: ['integer', 'null'] },
                            started_at: { type: 'integer' },
                            updated_at: { type: 'integer' },
                            cache: { type: 'object' },
                          },
                        },
                      },
                      jobs: {
                        type: 'object',
                        required: ['queued', 'running', 'retrying', 'succeeded', 'failed', 'canceled'],
                        additionalProperties: { type: 'integer', minimum: 0 },
                      },
                      jobs_unclaimed: {
                        type: 'integer',
                        minimum: 0,
                        description: 'Due jobs that no runner claimed within the configured bound.',
                      },
                      jobs_oldest_running_ms: {
                        type: 'integer',
                        minimum: 0,
                        description: 'Age of the oldest running attempt; 0 when none runs.',
                      },
                    },
                  },
                },
              },
            },
          },
        },
      },
      '/metrics': {
        get: {
          summary: 'Prometheus metrics (text exposition format).',
          responses: {
            '200': { description: 'Metrics', content: { 'text/plain': { schema: { type: 'string' } } } },
          },
        },
      },
      '/openapi.json': {
        get: {
          summary: 'This document.',
          responses: {
            '200': {
              description: 'OpenAPI 3.1',
              content: { 'application/json': { schema: { type: 'object' } } },
            },
          },
        },
      },
      '/api/v1/users/{user_id}/avatar': {
        parameters: [{ name: 'user_id', in: 'path', required: true, schema: { type: 'integer' } }],
        post: {
          summary: 'Set a user’s avatar (administrators; anyone may use `/users/me/avatar` as in Zulip).',
          description:
            'Multipart with exactly one file: JPEG, PNG, WebP, GIF or AVIF, at most CONCORD_AVATAR_MAX_BYTES ' +
            '(default 1 MiB) and CONCORD_IMAGE_MAX_PIXELS pixels (default 25 000 000); the error message ' +
            'names the configured limit. EXIF orientation is applied, metadata stripped, the image ' +
            'centre-cropped to a square. ' +
            'The user’s `avatar_version` moves on and clients get a `realm_user` update event.',
          security: [{ basicAuth: [] }],
          requestBody: {
            content: { 'multipart/form-data': { schema: { type: 'object' } } },
          },
          responses: {
            '200': {
              description: 'The new versioned avatar URL',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    required: ['result', 'msg', 'avatar_url'],
                    properties: {
                      result: { const: 'success' },
                      msg: { type: 'string' },
                      avatar_url: { type: 'string' },
                    },
                  },
                },
              },
            },
            '400': {
              description: 'Not permitted, not an image, unsupported format, truncated, or too many pixels',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
            },
            '413': {
              description: 'File larger than CONCORD_AVATAR_MAX_BYTES',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
            },
          },
        },
        delete: {
          summary: 'Return a user to the generated default avatar (administrators).',
          security: [{ basicAuth: [] }],
          responses: {
            '200': {
              description: 'The new versioned avatar URL (of the default avatar)',
              content: { 'application/json': { schema: { type: 'object' } } },
            },
          },
        },
      },
      '/img/{signature}/{fit}/{size}/{format}/{quality}/{source}': {
        get: {
          summary: 'A signed transform of a stored upload (imagor-style), immutable, with ETag/304.',
          description:
            '`signature` is base64url HMAC-SHA256, under any key of CONCORD_IMAGE_KEYS, of the path after ' +
            'it: `{fit|fill}/{W}x{H}/{webp|png|jpeg|avif}/q{50|60|70|80|90}/{sha256 of a stored upload}`; W ' +
            'and H are each one of 16, 32, 48, 64, 100, 128, 192, 256, 512, 1024. A missing, tampered or ' +
            'unknown-key signature is 403; operations outside the sets 400; an unknown source 404. The ' +
            'server never fetches a URL. The ETag is weak and names the result (source, operations, ' +
            'encoder version), whatever key signed the URL; a request whose If-None-Match carries it is ' +
            'answered 304 without reading or computing the image, once the source is known to be still ' +
            'stored (a deleted source is 404 even then). Error answers carry no cache headers.',
          parameters: [
            { name: 'signature', in: 'path', required: true, schema: { type: 'string' } },
            { name: 'fit', in: 'path', required: true, schema: { enum: ['fit', 'fill'] } },
            { name: 'size', in: 'path', required: true, schema: { type: 'string' } },
            { name: 'format', in: 'path', required: true, schema: { enum: ['webp', 'png', 'jpeg', 'avif'] } },
            { name: 'quality', in: 'path', required: true, schema: { type: 'string' } },
            { name: 'source', in: 'path', required: true, schema: { type: 'string' } },
          ],
          responses: {
            '200': {
              description: 'The image, `Cache-Control: public, max-age=31536000, immutable`',
              headers: {
                ETag: {
                  description: 'Weak validator of the result, e.g. `W/"3f…"`',
                  schema: { type: 'string' },
                },
              },
            },
            '304': { description: 'Not modified: If-None-Match carried this result’s ETag' },
            '400': {
              description:
                'Operation outside the bounded sets, or a stored source over CONCORD_IMAGE_MAX_PIXELS ' +
                '(possible after the limit was lowered)',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
            },
            '403': {
              description: 'Invalid signature, or no CONCORD_IMAGE_KEYS configured (transforms not enabled)',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
            },
            '404': {
              description: 'No such stored upload',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
            },
          },
        },
      },
      '/avatar/{user_id}/v{version}': {
        get: {
          summary: 'A user’s avatar at one version: immutable (`max-age=31536000, immutable`), with ETag.',
          description:
            '`s` is one of 16, 24, 28, 32, 40, 48, 56, 64, 80, 96, 100, 128, 192, 256, 500, 512 (default ' +
            '100). Uploaded avatars are PNG, default ones SVG. A URL of any other version than the current ' +
            'one answers 302 to the current URL with `max-age=60`, never new bytes under an old name.',
          parameters: [
            { name: 'user_id', in: 'path', required: true, schema: { type: 'integer' } },
            { name: 'version', in: 'path', required: true, schema: { type: 'integer' } },
            { name: 's', in: 'query', schema: { type: 'integer' } },
          ],
          responses: {
            '200': { description: 'The image' },
            '302': { description: 'Not the current version: redirect to it' },
            '304': { description: 'Not modified' },
            '400': {
              description:
                'A size outside the set, or an uploaded avatar over CONCORD_IMAGE_MAX_PIXELS (possible ' +
                'after the limit was lowered)',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
            },
          },
        },
      },
      '/api/v1/users/me/api_key/regenerate': {
        post: {
          summary: 'Replace the caller’s API key; the old one stops working at once.',
          security: [{ basicAuth: [] }],
          responses: {
            '200': {
              description: 'The new key',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    required: ['result', 'msg', 'api_key'],
                    properties: {
                      result: { const: 'success' },
                      msg: { type: 'string' },
                      api_key: { type: 'string' },
                    },
                  },
                },
              },
            },
            '401': {
              description: 'Not authenticated',
              content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
            },
          },
        },
      },
    },
  };
}

/** Schemas of the directory-source endpoints (jobs/directory), for Concord's document. */
/**
 * The event Concord adds to Zulip's: a job's status changed. Delivered to administrators' and
 * owners' queues (Zulip clients ignore types they do not know).
 */
const jobEventShape = {
  type: 'object',
  required: ['type', 'op', 'id', 'job'],
  properties: {
    type: { const: 'concord_job' },
    op: { const: 'update' },
    id: { type: 'integer' },
    job: { $ref: '#/components/schemas/SyncJob' },
  },
};

const directorySchemas = {
  DirectorySource: {
    type: 'object',
    required: [
      'id',
      'name',
      'connector',
      'settings',
      'schedule_seconds',
      'deactivate_missing',
      'date_created',
    ],
    properties: {
      id: { type: 'integer' },
      name: { type: 'string' },
      connector: { enum: ['ldap', 'csv'] },
      settings: {
        type: 'object',
        description:
          'LDAP: `url` (ldap:// or ldaps://), `bind_dn`, `bind_password` (write-only; shown as ' +
          '`bind_password_set`), `user_base_dn`, `group_base_dn` (null: no groups), `user_filter` ' +
          '(default `(objectClass=inetOrgPerson)`), `group_filter` (default `(objectClass=groupOfNames)`), ' +
          '`id_attribute` (uid), `name_attribute` (cn), `email_attribute` (mail), `group_name_attribute` ' +
          '(cn), `member_attribute` (member, DNs), `page_size` (500), `connect_timeout_ms` (5000), ' +
          '`timeout_ms` (30000, bounds the whole read). CSV: none.',
      },
      schedule_seconds: {
        type: ['integer', 'null'],
        description: 'LDAP only: sync every this many seconds.',
      },
      deactivate_missing: {
        type: 'boolean',
        description: 'Deactivate linked users the source no longer lists (and reactivate returning ones).',
      },
      date_created: { type: 'integer' },
      active_sync: { oneOf: [{ $ref: '#/components/schemas/SyncJob' }, { type: 'null' }] },
    },
  },
  SyncJob: {
    type: 'object',
    description:
      'A sync job’s status, derived from its row and lease: a run whose worker died shows as `stalled` ' +
      '(with `retries_at`), never as running.',
    required: ['id', 'state', 'attempt', 'max_attempts', 'progress', 'counts', 'error', 'created_at'],
    properties: {
      id: { type: 'integer' },
      kind: { const: 'directory.sync' },
      state: { enum: ['queued', 'running', 'retrying', 'stalled', 'succeeded', 'failed', 'canceled'] },
      attempt: { type: 'integer' },
      max_attempts: { type: 'integer' },
      progress: {
        type: 'object',
        properties: { done: { type: 'integer' }, total: { type: ['integer', 'null'] } },
      },
      counts: {
        type: 'object',
        description: 'created, updated, deactivated, subscribed, unsubscribed, skipped (rows with errors).',
        additionalProperties: { type: 'integer' },
      },
      error: { type: ['string', 'null'] },
      retry_reason: { type: ['string', 'null'] },
      retries_at: { type: ['integer', 'null'] },
      unclaimed: { type: 'boolean' },
      cancel_requested: { type: 'boolean' },
      created_at: { type: 'integer' },
      started_at: { type: ['integer', 'null'] },
      finished_at: { type: ['integer', 'null'] },
    },
  },
  SyncRun: {
    allOf: [
      { $ref: '#/components/schemas/SyncJob' },
      {
        type: 'object',
        required: ['attempts'],
        properties: {
          attempts: {
            type: 'array',
            items: {
              type: 'object',
              required: ['attempt', 'outcome', 'error', 'row_errors', 'counts', 'started_at'],
              properties: {
                attempt: { type: 'integer' },
                worker: { type: 'string' },
                outcome: { type: 'string' },
                error: { type: ['string', 'null'] },
                row_errors: {
                  type: 'array',
                  description: 'Skipped rows: `row` is `line N` for CSV, the entry’s DN or id for LDAP.',
                  items: {
                    type: 'object',
                    required: ['row', 'message'],
                    properties: { row: { type: 'string' }, message: { type: 'string' } },
                  },
                },
                counts: { type: 'object', additionalProperties: { type: 'integer' } },
                started_at: { type: 'integer' },
                finished_at: { type: ['integer', 'null'] },
              },
            },
          },
        },
      },
    ],
  },
};

/** Directory sources: administrators only, HTTP Basic auth, Zulip’s request encoding and error shape. */
function directorySourcePaths() {
  const ok = (properties: Record<string, unknown>, required: string[]) => ({
    '200': {
      description: 'Success',
      content: {
        'application/json': {
          schema: {
            type: 'object',
            required: ['result', 'msg', ...required],
            properties: { result: { const: 'success' }, msg: { type: 'string' }, ...properties },
          },
        },
      },
    },
    '400': {
      description:
        'Bad input (the message names the parameter and the rule), not an administrator ' +
        '(“Must be an organization administrator”), or no such source',
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    },
    '401': {
      description: 'Not authenticated',
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    },
  });
  const source = { $ref: '#/components/schemas/DirectorySource' };
  const job = { $ref: '#/components/schemas/SyncJob' };
  const id = { name: 'id', in: 'path', required: true, schema: { type: 'integer' } };
  const fields = (required: boolean) => [
    { name: 'name', in: 'query', required, schema: { type: 'string', maxLength: 100 } },
    {
      name: 'settings',
      in: 'query',
      schema: { type: 'string' },
      description: 'JSON object; on PATCH merged over the stored settings (so the bind password is kept).',
    },
    {
      name: 'schedule_seconds',
      in: 'query',
      schema: { type: 'string' },
      description: 'JSON integer of at least 60, or null for “sync now” only.',
    },
    { name: 'deactivate_missing', in: 'query', schema: { type: 'boolean' } },
  ];
  const security = [{ basicAuth: [] }];
  return {
    '/api/v1/concord/directory_sources': {
      get: {
        summary: 'List directory sources with their active sync, if any.',
        security,
        responses: ok({ sources: { type: 'array', items: source } }, ['sources']),
      },
      post: {
        summary: 'Create a directory source (LDAP or CSV).',
        security,
        parameters: [
          ...fields(true),
          { name: 'connector', in: 'query', required: true, schema: { enum: ['ldap', 'csv'] } },
        ],
        responses: ok({ id: { type: 'integer' }, source }, ['id', 'source']),
      },
    },
    '/api/v1/concord/directory_sources/{id}': {
      patch: {
        summary: 'Change a source’s name, settings, schedule or deactivation rule.',
        security,
        parameters: [id, ...fields(false)],
        responses: ok({ source }, ['source']),
      },
      delete: {
        summary: 'Delete a source and its links (users and channels it created stay).',
        description: 'Refused while a sync of the source is active: cancel it first.',
        security,
        parameters: [id],
        responses: ok({}, []),
      },
    },
    '/api/v1/concord/directory_sources/{id}/sync': {
      post: {
        summary: 'Sync now.',
        description:
          'Enqueues a sync (one active sync per source: an LDAP source answers the active one with ' +
          '`created: false`). A CSV source takes its file here, as one multipart/form-data file (up to ' +
          'CONCORD_AVATAR_MAX_BYTES) or a `csv` text parameter. The CSV has the header ' +
          '`external_id,email,full_name,channels`; `email` may be empty; `channels` is `;`-separated. A ' +
          'malformed row is skipped as a whole with a per-row error (`line N`); the rest applies. Users ' +
          'link to the source by external id; groups (CSV channels) map to channels, created if missing; ' +
          'members become subscribers. Changes are applied in pages of 500, each one command in the ' +
          'change log (realm_user and peer_add / peer_remove events); a second sync without changes in ' +
          'the source changes nothing.',
        security,
        parameters: [id, { name: 'csv', in: 'query', schema: { type: 'string' } }],
        responses: ok({ job, created: { type: 'boolean' } }, ['job', 'created']),
      },
    },
    '/api/v1/concord/directory_sources/{id}/cancel': {
      post: {
        summary: 'Cancel the source’s active sync.',
        description:
          '`outcome` is `canceled` (it had not started) or `requested` (its attempt stops between ' +
          'pages; committed pages stay). 400 when no sync is active.',
        security,
        parameters: [id],
        responses: ok({ outcome: { enum: ['canceled', 'requested', 'finished'] }, job }, ['outcome', 'job']),
      },
    },
    '/api/v1/concord/directory_sources/{id}/runs': {
      get: {
        summary: 'The source’s syncs, newest first, each with its attempts and per-row errors.',
        security,
        parameters: [
          id,
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100 } },
        ],
        responses: ok({ runs: { type: 'array', items: { $ref: '#/components/schemas/SyncRun' } } }, ['runs']),
      },
    },
  };
}
