import { z } from 'zod';
import * as s from './schemas';
import { chatBody, credentialBody, jobIdParam, providerParam, topUpBody } from './routes/llm';
import type { limitsOf } from './routes/user-limits';
import type { toWorkspaceView } from './routes/workspaces';

/** Compile time: what the routes' view functions return is what the document says (as ViewsFitWorkflows for workflow state). */
export type ViewsFitRoutes = [s.Fits<ReturnType<typeof toWorkspaceView>, typeof s.workspaceView>, s.Fits<Awaited<ReturnType<typeof limitsOf>>, typeof s.userLimitsView>];

/**
 * What a request field accepts is zod's own check, its `pattern`: zod also names the `format` it
 * implements (date-time, ipv4, ipv6, …), and a client that generates data from both at once
 * (schemathesis) spends seconds on each value. The pattern alone is exact, so the format goes.
 */
function patternsOnly(node: unknown): void {
  if (Array.isArray(node)) return node.forEach(patternsOnly);
  if (node === null || typeof node !== 'object') return;
  const o = node as Record<string, unknown>;
  if (typeof o.pattern === 'string' && typeof o.format === 'string') delete o.format;
  Object.values(o).forEach(patternsOnly);
}

/** A zod schema as JSON Schema: `output` for what the API sends, `input` for what it accepts. */
const json = (schema: z.ZodType, io: 'input' | 'output' = 'output') => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  if (io === 'input') patternsOnly(rest);
  return rest;
};
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const jsonContent = (schema: object) => ({ 'application/json': { schema } });
/** A 2xx with a JSON body: a view (zod) or a schema already in JSON form (a $ref). */
const ok = (description: string, body: z.ZodType | object) => ({ description, content: jsonContent(body instanceof z.ZodType ? json(body) : body) });
const empty = (description: string) => ({ description });
/** On a 503 that means no server can take the workspace now (api/placement-check.ts). */
const placementRetryAfter = { 'Retry-After': { schema: { type: 'integer', minimum: 1 }, description: 'seconds after which asking again may find a server with room' } };
const retryAfter = { 'Retry-After': { schema: { type: 'integer', minimum: 1 }, description: 'seconds until the next rate window' } };

/** Which error body a route family answers with. */
type ErrorShape = 'Error' | 'OpenAiError';
const failure = (description: string, shape: ErrorShape, headers?: object) => ({ description, content: jsonContent(ref(shape)), ...(headers ? { headers } : {}) });

/** What the middleware in front of every authenticated route can answer (api/app.ts), whatever the route. */
const COMMON = {
  '400': 'invalid input: the message names each bad field (details.fields), or the body is not JSON',
  '401': 'missing or invalid credentials (a Bearer JWT or X-Internal-API-Key)',
  '429': 'rate limited; Retry-After says when to try again',
  '503': 'a dependency (PostgreSQL, Redis or Temporal) does not answer; Retry-After says when to try again',
};
const WITH_BODY = { '413': 'the body is larger than 1 MiB', '415': 'a charset or Content-Encoding the API does not read (JSON as UTF-8; gzip, deflate or identity)' };
const retryAfter503 = { 'Retry-After': { schema: { type: 'integer', minimum: 1 }, description: 'seconds after which to try again' } };

interface Op {
  /** Public routes (no credentials) answer before the rate limit and authentication. */
  public?: boolean;
  /** Admins (or the internal key) only: a user gets 403. */
  adminOnly?: boolean;
  /** The OpenAI-compatible routes answer errors in OpenAI's shape. */
  shape?: ErrorShape;
  parameters?: object[];
  body?: z.ZodType;
  /** Named request bodies a client can send as they are (the contract test sends them too). */
  bodyExamples?: Record<string, unknown>;
  /** Only the successful answers (and redirects, WebSocket upgrades): errors go in `errors`. */
  responses: Record<string, object>;
  /** Errors this route raises itself, status → when. */
  errors?: Record<string, string>;
}
const security = [{ bearer: [] }, { internalKey: [] }];
const op = (summary: string, o: Op) => {
  const shape = o.shape ?? 'Error';
  const commonWhy: Record<string, string> = o.public ? {} : { ...COMMON, ...(o.body ? WITH_BODY : {}), ...(o.adminOnly ? { '403': 'admin role required' } : {}) };
  // A route's own reason for a status comes first; a dependency outage can still answer its 503.
  const why = { ...commonWhy, ...o.errors, ...(o.errors?.['503'] && commonWhy['503'] ? { '503': `${o.errors['503']}; or ${commonWhy['503']}` } : {}) };
  const headersOf = (code: string) => (code === '429' ? retryAfter : code === '503' && commonWhy['503'] ? retryAfter503 : undefined);
  // The rate limiter answers its 429 itself, in the API's own shape, on every route (api/rate-limit.ts).
  const errorResponses = Object.fromEntries(Object.entries(why).map(([code, text]) => [code, failure(text, code === '429' ? 'Error' : shape, headersOf(code))]));
  return {
    summary,
    // The contract test runs as a user over every operation not tagged admin.
    tags: [o.public ? 'public' : o.adminOnly ? 'admin' : 'user'],
    security: o.public ? [] : security,
    ...(o.parameters ? { parameters: o.parameters } : {}),
    ...(o.body
      ? {
          requestBody: {
            required: true,
            content: { 'application/json': { schema: json(o.body, 'input'), ...(o.bodyExamples ? { examples: Object.fromEntries(Object.entries(o.bodyExamples).map(([k, value]) => [k, { value }])) } : {}) } },
          },
        }
      : {}),
    // Successes first; a status the route describes itself (with headers of its own) keeps that description.
    responses: { ...o.responses, ...Object.fromEntries(Object.entries(errorResponses).filter(([code]) => !(code in o.responses))) },
  };
};
const adminOp = (summary: string, o: Op) => op(summary, { ...o, adminOnly: true });

function queryParams(schema: z.ZodObject) {
  const js = json(schema, 'input') as { properties: Record<string, object>; required?: string[] };
  return Object.entries(js.properties).map(([name, sch]) => ({ name, in: 'query', required: js.required?.includes(name) ?? false, schema: sch }));
}
/** A path parameter, checked by the route with `schema` (one of the routes' own param schemas' fields). */
const pathParam = (name: string, schema: z.ZodType) => ({ name, in: 'path', required: true, schema: json(schema, 'input') });
const idParam = pathParam('id', s.uuidParam.shape.id);
const cutoverId = pathParam('id', s.cutoverIdParam.shape.id);
const location = { Location: { schema: { type: 'string' }, description: 'where the new resource is read' } };
const withLocation = (response: object) => ({ ...response, headers: location });

/** A server-sent-events answer: each event's `data` is JSON (`data` schema), or `[DONE]` where `done` says so. */
const eventStream = (description: string, event: object, data: z.ZodType, done = false) => {
  const payload = { contentMediaType: 'application/json', contentSchema: json(data) };
  return {
    description,
    content: {
      'text/event-stream': {
        schema: {
          type: 'object',
          properties: { ...event, data: { type: 'string', ...(done ? { if: { const: '[DONE]' }, else: payload } : payload) } },
          required: ['data'],
        },
      },
    },
  };
};

const noServer = 'no such server';
const noWorkspace = 'no such workspace (or another user’s)';

/** The OpenAPI 3.1 document, generated from the same zod schemas that validate requests and shape answers. */
export function openApiDocument(): object {
  const v1 = (summary: string, o: Op) => op(summary, { ...o, shape: 'OpenAiError' });
  const workspaceLifecycle = (a: string) =>
    op(`${a} the workspace (its workflow runs the command)`, {
      responses: { '200': ok('done: the workspace as it is now', ref('Workspace')) },
      errors: { '404': noWorkspace, '409': 'not possible in its state (still provisioning, failed, deleted, migrating)', '504': 'its workflow did not answer in time' },
    });
  return {
    openapi: '3.1.0',
    info: {
      title: 'Podex Orchestrator API',
      version: '0.1.0',
      description:
        'Control plane for the Podex workspace-server fleet. Each answer counted by the rate limits carries the tightest budget it fell under: RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset (seconds to the next window) and RateLimit-Policy ("limit;w=window seconds").',
    },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'a user or admin JWT (role claim); admin-only routes answer users 403' },
        internalKey: { type: 'apiKey', in: 'header', name: 'X-Internal-API-Key', description: 'service-to-service: acts as an admin' },
        bearerSubprotocol: { type: 'apiKey', in: 'header', name: 'Sec-WebSocket-Protocol', description: 'WebSocket endpoints: the JWT as the subprotocol bearer.<jwt>' },
      },
      schemas: {
        Error: json(s.errorView),
        OpenAiError: json(s.openAiErrorView),
        Server: json(s.serverView),
        AvailableServer: json(s.availableServerView),
        MaintenanceWindow: json(s.maintenanceView),
        AuditEntry: json(s.auditView),
        Workspace: json(s.workspaceView),
        UserLimits: json(s.userLimitsView),
        Snapshot: json(s.snapshotView),
        BackupRun: json(s.backupRunView),
      },
    },
    paths: {
      '/healthz': { get: op('liveness', { public: true, responses: { '200': ok('alive', s.healthView) } }) },
      '/readyz': {
        get: op('readiness of Temporal, PostgreSQL and Redis (asked at most every 5 s)', {
          public: true,
          responses: { '200': ok('ready', s.readinessView), '503': ok('a dependency does not answer', s.readinessView) },
        }),
      },
      '/openapi.json': { get: op('this document', { public: true, responses: { '200': ok('OpenAPI 3.1', { type: 'object' }) } }) },
      '/metrics': {
        get: adminOp('Prometheus metrics for admins (aggregate counts only); Prometheus scrapes METRICS_ADDRESS without credentials', {
          responses: { '200': { description: 'Prometheus text format 0.0.4', content: { 'text/plain': { schema: { type: 'string' } } } } },
        }),
      },
      '/servers': {
        get: adminOp('list servers', { parameters: queryParams(s.listServersQuery), responses: { '200': ok('servers', s.serverListView) } }),
        post: adminOp('register a server and start its onboarding workflow', {
          body: s.createServerBody,
          responses: { '202': withLocation(ok('registered; onboarding started', s.serverRegisteredView)) },
          errors: { '409': 'hostname already registered' },
        }),
      },
      '/servers/available': {
        get: op('servers a user may choose for a tier, with free capacity', { parameters: queryParams(s.availableQuery), responses: { '200': ok('available servers', s.availableListView) } }),
      },
      '/servers/{id}': {
        parameters: [idParam],
        get: adminOp('one server, with its onboarding workflow', { responses: { '200': ok('the server', s.serverDetailView) }, errors: { '404': noServer } }),
        patch: adminOp('update a server', {
          body: s.updateServerBody,
          responses: { '200': ok('updated', ref('Server')) },
          errors: { '404': noServer, '409': 'privateAddress: the server hosts workspaces bound to its current address' },
        }),
        delete: adminOp('remove a server that hosts no workspaces', {
          responses: { '204': empty('removed') },
          errors: { '404': noServer, '409': 'the server still hosts workspaces: drain it first' },
        }),
      },
      '/servers/{id}/cordon': { parameters: [idParam], post: adminOp('take no new workspaces', { responses: { '200': ok('cordoned', ref('Server')) }, errors: { '404': noServer } }) },
      '/servers/{id}/uncordon': { parameters: [idParam], post: adminOp('take new workspaces again', { responses: { '200': ok('uncordoned', ref('Server')) }, errors: { '404': noServer } }) },
      '/servers/{id}/onboard': {
        parameters: [idParam],
        post: adminOp('run onboarding (capacity, audit, image) again', { responses: { '202': ok('onboarding started', s.onboardingStartedView) }, errors: { '404': noServer } }),
      },
      '/servers/{id}/maintenance': {
        parameters: [idParam],
        get: adminOp('current and future maintenance windows', { responses: { '200': ok('windows', s.maintenanceListView) }, errors: { '404': noServer } }),
        post: adminOp('schedule a maintenance window', { body: s.maintenanceBody, responses: { '201': ok('scheduled', ref('MaintenanceWindow')) }, errors: { '404': noServer } }),
      },
      '/servers/{id}/maintenance/{windowId}': {
        parameters: [idParam, pathParam('windowId', s.windowParams.shape.windowId)],
        delete: adminOp('cancel or end a maintenance window', { responses: { '204': empty('cancelled') }, errors: { '404': 'no such window on this server' } }),
      },
      '/servers/{id}/drain': {
        parameters: [idParam],
        post: adminOp('cordon the server and migrate every workspace off it (a drain already running is answered as started)', {
          body: s.drainBody,
          responses: { '202': ok('started', s.drainStartedView) },
          errors: { '404': noServer, '409': 'the server is drained already' },
        }),
        get: adminOp('the drain’s progress: each workspace’s phase, bytes copied, what blocks it', {
          responses: { '200': ok('progress', s.drainProgressView) },
          errors: { '404': 'no drain for this server', '503': 'the drain workflow did not answer (no worker, or Temporal is down); try again' },
        }),
      },
      '/servers/{id}/drain/{action}': {
        parameters: [idParam, pathParam('action', s.drainActionParams.shape.action)],
        post: adminOp('steer a running drain', { responses: { '202': ok('signalled', s.drainSignalledView) }, errors: { '409': 'the server has no drain in progress' } }),
      },
      '/workspaces': {
        get: op('the caller’s workspaces (admins: all, or ?owner=)', { parameters: queryParams(s.listWorkspacesQuery), responses: { '200': ok('workspaces', s.workspaceListView) } }),
        post: op('create a workspace: placement, then the provisioning workflow', {
          parameters: [...queryParams(s.createWorkspaceQuery), { name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string' }, description: 'the same key is the same workspace' }],
          body: s.createWorkspaceBody,
          responses: {
            '201': ok('running (with ?wait=true)', s.workspaceCreatedView),
            '202': withLocation(ok('provisioning started (or, with ?wait=true, still provisioning after two minutes)', s.workspaceCreatedView)),
            '503': failure('no server can take it now: full, cordoned, unreachable or in maintenance (no_capacity, with Retry-After); no row is kept. With ?wait=true also when the workflow found no room after that check (details.workspace). Users get the short reason; admins also details.detail', 'Error', placementRetryAfter),
          },
          errors: {
            '403': 'not entitled (details.field: image and server are for admins; tier or constraints.gpu beyond the plan) or over a limit (quota_exceeded; details.limit names it)',
            '422': 'no server could ever take it: a label, GPU, architecture or region no server has, a tier larger than every server, or a server id that is not registered (unsatisfiable; details.fields names each field, admins also get details.detail); no row is kept. With ?wait=true also when the workflow found so after that check (details.workspace)',
            '502': 'with ?wait=true: provisioning failed; compensated',
          },
        }),
      },
      '/workspaces/{id}': {
        parameters: [idParam],
        get: op('a workspace with its workflow’s progress', { responses: { '200': ok('the workspace', s.workspaceDetailView) }, errors: { '404': noWorkspace } }),
        delete: op('delete: container and network, the volume unless ?keepVolume=true, the reservation', {
          parameters: queryParams(s.deleteWorkspaceQuery),
          responses: { '204': empty('deleted') },
          errors: { '404': noWorkspace, '409': 'not possible in its state', '504': 'its workflow did not answer in time' },
        }),
      },
      '/workspaces/{id}/start': { parameters: [idParam], post: workspaceLifecycle('start') },
      '/workspaces/{id}/stop': { parameters: [idParam], post: workspaceLifecycle('stop') },
      '/workspaces/{id}/restart': { parameters: [idParam], post: workspaceLifecycle('restart') },
      '/workspaces/{id}/events': {
        parameters: [idParam],
        get: op('status changes as server-sent events: the current status first, then each change (comments keep the stream alive)', {
          responses: { '200': eventStream('`event: status` events', { event: { const: 'status' } }, s.workspaceStatusEvent) },
          errors: { '404': noWorkspace, '429': 'too many open event streams for this user, or rate limited' },
        }),
      },
      '/workspaces/{id}/exec': {
        parameters: [idParam],
        post: op('run a command in the running workspace (Docker exec, no TTY); owner or admin; audited without output or variable values', {
          body: s.execBody,
          responses: {
            '200': {
              description:
                'by Accept: application/x-ndjson (the default) streams one line per output chunk {"stream":"stdout"|"stderr","data":"…"} as it arrives, then {"exitCode","truncated","timedOut","durationMs"} (or {"error"} if the command could not start after all); application/json (asked for alone) answers one object at the end',
              content: {
                'application/x-ndjson': {
                  schema: {
                    oneOf: [
                      { type: 'object', properties: { stream: { type: 'string', enum: ['stdout', 'stderr'] }, data: { type: 'string' } }, required: ['stream', 'data'], additionalProperties: false },
                      json(s.execResultView.omit({ stdout: true, stderr: true })),
                      { type: 'object', properties: { error: { type: 'string' } }, required: ['error'], additionalProperties: false },
                    ],
                  },
                },
                'application/json': { schema: json(s.execResultView) },
              },
            },
          },
          errors: { '404': noWorkspace, '409': 'the workspace is not running', '502': 'the workspace’s server did not answer' },
        }),
      },
      '/workspaces/{id}/terminal': {
        parameters: [idParam],
        get: {
          ...op('a terminal in the running workspace over a WebSocket (Docker exec with a TTY); owner or admin; audited', {
            parameters: [
              ...queryParams(s.terminalQuery),
              { name: 'Sec-WebSocket-Protocol', in: 'header', required: false, schema: { type: 'string' }, description: 'browsers: `podex.terminal, bearer.<jwt>` (the answer selects podex.terminal)' },
            ],
            responses: {
              '101': {
                description:
                  'Switching Protocols (WebSocket). Binary frames both ways are raw terminal bytes (client → stdin, server → output). Client text frames are JSON: {"type":"resize","cols":N,"rows":N} or {"type":"input","data":"…"}. When the command exits the server sends {"type":"exit","exitCode":N} and closes with 1000; a bad control message gets {"type":"error","message":"…"}.',
              },
            },
            errors: { '404': `${noWorkspace}; a request without an Upgrade header is a 404 too`, '409': 'the workspace is not running' },
          }),
          security: [...security, { bearerSubprotocol: [] }],
        },
      },
      '/workspaces/{id}/open': {
        parameters: [idParam],
        get: op('hand-off to the workspace’s own host: a redirect (or, with Accept: application/json, the URL) carrying a one-time ticket that host trades for its own cookie', {
          parameters: queryParams(s.openWorkspaceQuery),
          responses: {
            '302': { description: 'to the workspace host with ?podex_ticket=…', headers: { Location: { schema: { type: 'string' } } } },
            '200': ok('the URL with its ticket', s.workspaceOpenView),
          },
          errors: { '400': 'port is not a preview port of this workspace, or invalid input', '404': noWorkspace },
        }),
      },
      '/workspaces/{id}/share': {
        parameters: [idParam],
        post: op('a signed, expiring link that opens one preview port to whoever has it', {
          body: s.shareWorkspaceBody,
          responses: { '201': ok('the link', s.workspaceShareView) },
          errors: { '400': 'port is not a preview port of this workspace, or invalid input', '404': noWorkspace },
        }),
      },
      '/workspaces/{id}/migrate': {
        parameters: [idParam],
        post: adminOp('move the workspace and its data to another server (?wait=true for the outcome)', {
          body: s.migrateWorkspaceBody,
          parameters: queryParams(s.waitQuery),
          responses: { '202': ok('started', s.migrationStartedView), '200': ok('moved (with ?wait=true)', s.migrationResultView), '503': failure('no other server can take it now (no_capacity, with Retry-After; details.detail says why each was excluded); with ?wait=true also when the migration found none and rolled back', 'Error', placementRetryAfter) },
          errors: { '400': 'targetServer is the workspace’s own server, or invalid input', '404': noWorkspace, '409': 'not running or stopped, or (with ?wait=true) rolled back', '422': 'no server but its own could ever take the workspace (its tier or constraints), or targetServer is not registered (unsatisfiable; details.fields names it)' },
        }),
      },
      '/proxy/auth': {
        get: {
          ...op('the Workspace Proxy’s forward auth: 2xx names the upstream in X-Podex-Upstream; anything else is the answer the visitor gets (HTML for a browser, JSON otherwise)', {
            public: true,
            responses: {
              '204': { description: 'allowed', headers: { 'X-Podex-Upstream': { schema: { type: 'string' } }, 'X-Podex-Cookie': { schema: { type: 'string' } } } },
              '302': { description: 'ticket or share link traded for a cookie; or a browser sent to sign in', headers: { Location: { schema: { type: 'string' } } } },
              ...Object.fromEntries(
                [
                  ['400', 'the request URI (X-Forwarded-Uri) does not parse'],
                  ['401', 'no or invalid credentials, or an expired share link'],
                  ['404', 'no such workspace (or another user’s), or an undeclared port'],
                  ['503', 'moving, starting, stopping or stopped (X-Podex-Workspace-State; Retry-After while moving or starting), or the check itself failed'],
                ].map(([code, why]) => [code, { description: why, content: { ...jsonContent(ref('Error')), 'text/html': { schema: { type: 'string' } } } }]),
              ),
            },
          }),
        },
      },
      '/proxy/admin-auth': {
        get: op('forward auth for the Temporal UI behind the platform proxy: an admin JWT as a Bearer token or as the password of Basic', {
          public: true,
          responses: {
            '204': empty('an admin: the proxy forwards the request'),
            '401': { ...failure('no, invalid or expired credentials', 'Error'), headers: { 'WWW-Authenticate': { schema: { type: 'string' } } } },
            '403': failure('not an admin', 'Error'),
            '503': failure('the check itself failed; try again', 'Error'),
          },
        }),
      },
      '/proxy/routes': {
        get: adminOp('every routable workspace as a Traefik dynamic-configuration document (for a proxy that takes routes instead of asking per request)', {
          responses: { '200': ok('http.routers, http.services and the forward-auth middleware', s.proxyRoutesView) },
        }),
      },
      '/backups': {
        get: adminOp('snapshots in the repository and recent backup runs', {
          parameters: queryParams(s.listBackupsQuery),
          responses: { '200': ok('a page of snapshots (newest first), the cursor of the next page, and recent runs', s.backupListView) },
          errors: { '503': 'the repository cannot be opened (wrong password, unreachable)' },
        }),
        post: adminOp('start a backup run now (?wait=true for its result)', {
          body: s.startBackupBody,
          parameters: queryParams(s.waitQuery),
          responses: { '202': ok('started', s.backupStartedView), '200': ok('finished (with ?wait=true)', s.backupFinishedView) },
          errors: { '500': 'with ?wait=true: the run failed; the message says what failed', '503': 'with ?wait=true: the repository cannot be opened' },
        }),
      },
      '/backups/restore': {
        post: adminOp('restore a workspace volume (in place or into a new volume) or the database (into a new database)', {
          body: s.restoreBody,
          parameters: queryParams(s.waitQuery),
          responses: { '202': ok('started', s.backupStartedView), '200': ok('restored (with ?wait=true)', s.restoreFinishedView) },
          errors: {
            '400': 'the snapshot is not of that workspace or kind, or invalid input',
            '404': 'no such snapshot or workspace',
            '409': 'not possible now (target exists, restore running, workspace state)',
            '500': 'with ?wait=true: the restore failed',
            '503': 'the repository cannot be opened',
          },
        }),
      },
      '/cutovers': {
        post: adminOp('start the GCP → self-hosted cutover of a zone: pre-flight, approval, DNS switch, health watch', {
          body: s.cutoverBody,
          responses: { '202': withLocation(ok('started; follow it at /cutovers/{id}', s.cutoverStartedView)) },
          errors: { '409': 'a cutover of this zone is running' },
        }),
      },
      '/cutovers/{id}': {
        parameters: [cutoverId],
        get: adminOp('phase, checklist, captured records, probe history', { responses: { '200': ok('the cutover', s.cutoverView) }, errors: { '404': 'no such cutover' } }),
      },
      '/cutovers/{id}/approve': {
        parameters: [cutoverId],
        post: adminOp('approve the switch', { responses: { '202': ok('signalled', s.cutoverSignalledView) }, errors: { '404': 'no such cutover', '409': 'the cutover has ended' } }),
      },
      '/cutovers/{id}/rollback': {
        parameters: [cutoverId],
        post: adminOp('roll back: every record as captured (and the database, if the plan says so)', {
          body: s.rollbackBody,
          responses: { '202': ok('signalled', s.cutoverSignalledView) },
          errors: { '404': 'no such cutover', '409': 'the cutover has ended' },
        }),
      },
      '/v1/models': { get: v1('models on offer (OpenAI-compatible)', { responses: { '200': ok('model list', s.modelListView) } }) },
      '/v1/chat/completions': {
        post: v1('chat completion, streamed (SSE) or not (OpenAI-compatible); routed to the user’s own provider or OpenRouter', {
          body: chatBody,
          bodyExamples: {
            answer: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 32 },
            streamed: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 32, stream: true },
          },
          responses: {
            '200': {
              description: 'the provider’s completion; with stream: true, its chunks as server-sent events ending in `data: [DONE]` (an error after the first chunk is one more event)',
              content: {
                ...jsonContent(json(s.chatCompletionView)),
                ...eventStream('', {}, z.union([s.chatChunkView, s.streamErrorView]), true).content,
              },
            },
          },
          errors: {
            '400': 'invalid input, a model not on offer, or the provider refused the request (param names the field)',
            '402': 'Podex credit, less calls in flight, does not cover the most this call can cost',
            '4XX': 'the provider refused the request with this status (e.g. 404: it does not know the model)',
            '409': 'a stored provider key no longer opens: enter it again',
            '502': 'every provider failed',
            '503': 'no provider is configured for the model, or it has no price yet',
          },
        }),
      },
      '/v1/jobs': {
        post: v1('a durable completion run as a workflow', {
          body: chatBody,
          responses: { '202': withLocation(ok('started', s.jobStartedView)) },
          errors: { '400': 'invalid input, stream: true, or a model not on offer', '409': 'a stored provider key no longer opens', '503': 'no provider is configured for the model' },
        }),
      },
      '/v1/jobs/{id}': {
        parameters: [pathParam('id', jobIdParam.shape.id)],
        get: v1('a job’s status and result', { responses: { '200': ok('the job', s.jobView) }, errors: { '404': 'no such job (or another user’s)' } }),
      },
      '/v1/providers': { get: v1('the user’s own providers (never their keys)', { responses: { '200': ok('providers', s.providerListView) } }) },
      '/v1/providers/{provider}': {
        parameters: [pathParam('provider', providerParam.shape.provider)],
        put: v1('store the user’s key (or Ollama URL: https to public addresses only, unless LLM_PROVIDER_ALLOW lists the host), encrypted at rest', {
          body: credentialBody,
          responses: { '204': empty('stored') },
          errors: { '400': 'invalid input, a missing apiKey (baseUrl for ollama), or a refused baseUrl (param: baseUrl)', '503': 'storing keys is not configured (LLM_KEYS_ENCRYPTION_KEY)' },
        }),
        delete: v1('forget it', { responses: { '204': empty('removed') }, errors: { '404': 'none stored' } }),
      },
      '/v1/credits': {
        get: v1('the user’s Podex credit balance (USD, at least six places, up to 10^-12)', { responses: { '200': ok('balance', s.creditBalanceView) } }),
      },
      '/credits/{userId}': {
        parameters: [
          pathParam('userId', s.userIdParam.shape.id),
          { name: 'Idempotency-Key', in: 'header', required: true, schema: { type: 'string', pattern: '^[\\x21-\\x7e]{8,255}$' }, description: 'one per top-up: a repeat applies nothing' },
        ],
        post: op('add Podex credits to a user, once per Idempotency-Key (admins; errors in OpenAI’s shape, as the /v1 routes)', {
          shape: 'OpenAiError',
          adminOnly: true,
          body: topUpBody,
          responses: {
            '200': {
              ...ok('the balance after this top-up (a repeat answers the same, with Idempotent-Replayed: true)', s.topUpView),
              headers: { 'Idempotent-Replayed': { schema: { type: 'string', enum: ['true'] }, description: 'present when the key was already applied' } },
            },
          },
          errors: { '422': 'the Idempotency-Key was used for another user or amount, or the balance would exceed 99999999.999999999999 USD' },
        }),
      },
      '/codec/encode': {
        post: adminOp('Temporal remote codec: encrypt payloads as this deployment does (admins; for the Temporal UI and CLI)', {
          body: s.codecPayloads,
          responses: { '200': ok('the payloads, encoded', s.codecPayloads) },
          errors: { '422': 'the payloads could not be encoded' },
        }),
      },
      '/codec/decode': {
        post: adminOp('Temporal remote codec: decrypt payloads stored in Temporal (admins; they hold users’ prompts)', {
          body: s.codecPayloads,
          responses: { '200': ok('the payloads, decoded', s.codecPayloads) },
          errors: { '422': 'a payload no configured key opens' },
        }),
      },
      '/users/{id}/limits': {
        parameters: [pathParam('id', s.userIdParam.shape.id)],
        get: op('a user’s plan, limits, overrides and usage (a user: their own; admins: anyone’s)', {
          responses: { '200': ok('the limits', ref('UserLimits')) },
          errors: { '403': 'another user’s limits (admins only)' },
        }),
        put: adminOp('replace a user’s overrides (a field left out or null follows the plan); audited', { body: s.userLimitsBody, responses: { '200': ok('the limits now', ref('UserLimits')) } }),
      },
      '/audit': {
        get: adminOp('admin actions, newest first', { parameters: queryParams(s.auditQuery), responses: { '200': ok('entries', s.auditListView) } }),
      },
    },
  };
}
