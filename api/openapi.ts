import { z } from 'zod';
import * as s from './schemas';
import { chatBody, topUpBody } from './routes/llm';

const json = (schema: z.ZodType, io: 'input' | 'output' = 'output') => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
};
const content = (schema: z.ZodType, io: 'input' | 'output' = 'output') => ({ 'application/json': { schema: json(schema, io) } });
const err = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });
/** On a 503 that means no server can take the workspace now (api/placement-check.ts). */
const placementRetryAfter = { 'Retry-After': { schema: { type: 'integer', minimum: 1 }, description: 'seconds after which asking again may find a server with room' } };
const errors = {
  '400': err('invalid input; the message names each bad field'),
  '401': err('missing or invalid credentials'),
  '403': err('not allowed for this role'),
  '429': err('rate limited; see Retry-After'),
};
/** What reading a request body can refuse (api/body.ts), for operations that take one. */
const bodyErrors = {
  '413': err('the body is larger than 1 MiB'),
  '415': err('a charset or Content-Encoding the API does not read (JSON as UTF-8; gzip, deflate or identity)'),
};

function queryParams(schema: z.ZodObject) {
  const js = json(schema, 'input') as { properties: Record<string, object>; required?: string[] };
  return Object.entries(js.properties).map(([name, sch]) => ({ name, in: 'query', required: js.required?.includes(name) ?? false, schema: sch }));
}
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } };
const admin = [{ bearer: [] }, { internalKey: [] }];
const user = [{ bearer: [] }];

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const ok = (description: string, schema?: object) => ({ description, ...(schema ? { content: { 'application/json': { schema } } } : {}) });
const listOf = (key: string, item: string, extra: Record<string, object> = {}) => ({
  type: 'object',
  properties: { [key]: { type: 'array', items: ref(item) }, ...extra },
});

interface Op {
  security?: object[];
  parameters?: object[];
  body?: z.ZodType;
  responses: Record<string, object>;
}
const op = (summary: string, o: Op) => ({
  summary,
  security: o.security ?? admin,
  ...(o.parameters ? { parameters: o.parameters } : {}),
  ...(o.body ? { requestBody: { required: true, content: content(o.body, 'input') } } : {}),
  responses: { ...o.responses, ...(o.security?.length === 0 ? {} : errors), ...(o.body ? bodyErrors : {}) },
});
const missing = err('no such server');
const creditBalance = { type: 'object', properties: { balanceUsd: { type: 'string', pattern: '^-?\\d+\\.\\d{6,12}$' } }, required: ['balanceUsd'] };

/** The OpenAPI 3.1 document, generated from the same zod schemas that validate requests. */
export function openApiDocument(): object {
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
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
        internalKey: { type: 'apiKey', in: 'header', name: 'X-Internal-API-Key' },
        bearerSubprotocol: { type: 'apiKey', in: 'header', name: 'Sec-WebSocket-Protocol', description: 'WebSocket endpoints: the JWT as the subprotocol bearer.<jwt>' },
      },
      schemas: {
        Error: json(s.errorView),
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
      '/healthz': { get: op('liveness', { security: [], responses: { '200': ok('alive') } }) },
      '/readyz': {
        get: op('readiness of Temporal, PostgreSQL and Redis', { security: [], responses: { '200': ok('ready'), '503': ok('a dependency does not answer') } }),
      },
      '/openapi.json': { get: op('this document', { security: [], responses: { '200': ok('OpenAPI 3.1') } }) },
      '/servers': {
        get: op('list servers', { parameters: queryParams(s.listServersQuery), responses: { '200': ok('servers', listOf('servers', 'Server')) } }),
        post: op('register a server and start its onboarding workflow', {
          body: s.createServerBody,
          responses: { '202': ok('registered; onboarding started'), '409': err('hostname already registered') },
        }),
      },
      '/servers/available': {
        get: op('servers a user may choose for a tier, with free capacity', {
          security: [{ bearer: [] }],
          parameters: queryParams(s.availableQuery),
          responses: { '200': ok('available servers', listOf('servers', 'AvailableServer', { tier: { type: 'string' } })) },
        }),
      },
      '/servers/{id}': {
        parameters: [idParam],
        get: op('one server', { responses: { '200': ok('the server', ref('Server')), '404': missing } }),
        patch: op('update a server', { body: s.updateServerBody, responses: { '200': ok('updated', ref('Server')), '404': missing } }),
        delete: op('remove a server that hosts no workspaces', {
          responses: { '204': ok('removed'), '404': missing, '409': err('the server still hosts workspaces: drain it first') },
        }),
      },
      '/servers/{id}/cordon': { parameters: [idParam], post: op('take no new workspaces', { responses: { '200': ok('cordoned', ref('Server')), '404': missing } }) },
      '/servers/{id}/uncordon': { parameters: [idParam], post: op('take new workspaces again', { responses: { '200': ok('uncordoned', ref('Server')), '404': missing } }) },
      '/servers/{id}/onboard': { parameters: [idParam], post: op('run onboarding (capacity, audit, image) again', { responses: { '202': ok('onboarding started'), '404': missing } }) },
      '/servers/{id}/maintenance': {
        parameters: [idParam],
        get: op('current and future maintenance windows', { responses: { '200': ok('windows', listOf('windows', 'MaintenanceWindow')), '404': missing } }),
        post: op('schedule a maintenance window', { body: s.maintenanceBody, responses: { '201': ok('scheduled', ref('MaintenanceWindow')), '404': missing } }),
      },
      '/servers/{id}/maintenance/{windowId}': {
        parameters: [idParam, { name: 'windowId', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } }],
        delete: op('cancel or end a maintenance window', { responses: { '204': ok('cancelled'), '404': err('no such window') } }),
      },
      '/workspaces': {
        get: op('the caller’s workspaces (admins: all, or ?owner=)', { security: user, parameters: queryParams(s.listWorkspacesQuery), responses: { '200': ok('workspaces', listOf('workspaces', 'Workspace')) } }),
        post: op('create a workspace: placement, then the provisioning workflow', {
          security: user,
          parameters: [...queryParams(s.createWorkspaceQuery), { name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string' } }],
          body: s.createWorkspaceBody,
          responses: {
            '201': ok('running (with ?wait=true)'),
            '202': ok('provisioning started'),
            '403': err('not entitled (details.field: image and server are for admins; tier or constraints.gpu beyond the plan) or over a limit (quota_exceeded; details.limit names it)'),
            '502': err('provisioning failed; compensated'),
            '422': err('no server could ever take it: a label, GPU, architecture or region no server has, a tier larger than every server, or a server id that is not registered (unsatisfiable; details.fields names each field, admins also get details.detail); no row is kept. With ?wait=true also when the workflow found so after that check (details.workspace)'),
            '503': { ...err('no server can take it now: full, cordoned, unreachable or in maintenance (no_capacity, with Retry-After); no row is kept. With ?wait=true also when the workflow found no room after that check (details.workspace). Users get the short reason; admins also details.detail'), headers: placementRetryAfter },
          },
        }),
      },
      '/workspaces/{id}': {
        parameters: [idParam],
        get: op('a workspace with its workflow’s progress', { security: user, responses: { '200': ok('the workspace', ref('Workspace')), '404': err('no such workspace') } }),
        delete: op('delete: container and network, the volume unless ?keepVolume=true, the reservation', {
          security: user,
          parameters: queryParams(s.deleteWorkspaceQuery),
          responses: { '204': ok('deleted'), '404': err('no such workspace'), '409': err('not possible in its state') },
        }),
      },
      ...Object.fromEntries(
        ['start', 'stop', 'restart'].map((a) => [
          `/workspaces/{id}/${a}`,
          { parameters: [idParam], post: op(`${a} the workspace`, { security: user, responses: { '200': ok('done', ref('Workspace')), '404': err('no such workspace'), '409': err('not possible in its state') } }) },
        ]),
      ),
      '/workspaces/{id}/events': {
        parameters: [idParam],
        get: op('status changes as server-sent events', { security: user, responses: { '200': { description: 'text/event-stream', content: { 'text/event-stream': { schema: { type: 'string' } } } }, '404': err('no such workspace'), '429': err('too many open event streams for this user, or rate limited') } }),
      },
      '/workspaces/{id}/exec': {
        parameters: [idParam],
        post: op('run a command in the running workspace (Docker exec, no TTY); owner or admin; audited without output or variable values', {
          security: [...user, { internalKey: [] }],
          body: s.execBody,
          responses: {
            '200': {
              description: 'by Accept: application/x-ndjson (the default) streams one line per output chunk {"stream":"stdout"|"stderr","data":"…"} as it arrives, then {"exitCode","truncated","timedOut","durationMs"}; application/json (asked for alone) answers one object at the end',
              content: {
                'application/x-ndjson': {
                  schema: {
                    oneOf: [
                      { type: 'object', properties: { stream: { type: 'string', enum: ['stdout', 'stderr'] }, data: { type: 'string' } }, required: ['stream', 'data'] },
                      json(s.execResultView.omit({ stdout: true, stderr: true })),
                    ],
                  },
                },
                'application/json': { schema: json(s.execResultView) },
              },
            },
            '404': err('no such workspace'),
            '409': err('the workspace is not running'),
            '502': err('the workspace’s server did not answer'),
          },
        }),
      },
      '/workspaces/{id}/terminal': {
        parameters: [idParam],
        get: op('a terminal in the running workspace over a WebSocket (Docker exec with a TTY); owner or admin; audited', {
          security: [...user, { bearerSubprotocol: [] }],
          parameters: [
            ...queryParams(s.terminalQuery),
            { name: 'Sec-WebSocket-Protocol', in: 'header', required: false, schema: { type: 'string' }, description: 'browsers: `podex.terminal, bearer.<jwt>` (the answer selects podex.terminal)' },
          ],
          responses: {
            '101': {
              description:
                'Switching Protocols (WebSocket). Binary frames both ways are raw terminal bytes (client → stdin, server → output). Client text frames are JSON: {"type":"resize","cols":N,"rows":N} or {"type":"input","data":"…"}. When the command exits the server sends {"type":"exit","exitCode":N} and closes with 1000; a bad control message gets {"type":"error","message":"…"}.',
            },
            '404': err('no such workspace'),
            '409': err('the workspace is not running'),
          },
        }),
      },
      '/workspaces/{id}/open': {
        parameters: [idParam],
        get: op('hand-off to the workspace’s own host: a redirect (or, with Accept: application/json, the URL) carrying a one-time ticket that host trades for its own cookie', {
          security: user,
          parameters: queryParams(s.openWorkspaceQuery),
          responses: {
            '302': { description: 'to the workspace host with ?podex_ticket=…', headers: { Location: { schema: { type: 'string' } } } },
            '200': ok('the URL with its ticket', { type: 'object', properties: { url: { type: 'string' }, expiresAt: { type: 'string', format: 'date-time' } }, required: ['url', 'expiresAt'] }),
            '400': err('port is not a preview port of this workspace'),
            '404': err('no such workspace'),
          },
        }),
      },
      '/workspaces/{id}/share': {
        parameters: [idParam],
        post: op('a signed, expiring link that opens one preview port to whoever has it', {
          security: user,
          body: s.shareWorkspaceBody,
          responses: {
            '201': ok('the link', { type: 'object', properties: { url: { type: 'string' }, port: { type: 'integer' }, expiresAt: { type: 'string', format: 'date-time' } }, required: ['url', 'port', 'expiresAt'] }),
            '400': err('port is not a preview port of this workspace'),
            '404': err('no such workspace'),
          },
        }),
      },
      '/proxy/auth': {
        get: op('the Workspace Proxy’s forward auth: 2xx names the upstream in X-Podex-Upstream; anything else is the answer the visitor gets', {
          security: [],
          responses: {
            '204': { description: 'allowed', headers: { 'X-Podex-Upstream': { schema: { type: 'string' } }, 'X-Podex-Cookie': { schema: { type: 'string' } } } },
            '302': { description: 'ticket or share link traded for a cookie; or a browser sent to sign in', headers: { Location: { schema: { type: 'string' } } } },
            '400': err('the request URI (X-Forwarded-Uri) does not parse'),
            '401': err('no or invalid credentials, or an expired share link'),
            '404': err('no such workspace (or another user’s), or an undeclared port'),
            '503': err('moving, starting, stopping or stopped (X-Podex-Workspace-State; Retry-After while moving or starting)'),
          },
        }),
      },
      '/proxy/admin-auth': {
        get: op('forward auth for the Temporal UI behind the platform proxy: an admin JWT as a Bearer token or as the password of Basic', {
          security: [],
          responses: {
            '204': { description: 'an admin: the proxy forwards the request' },
            '401': { ...err('no, invalid or expired credentials'), headers: { 'WWW-Authenticate': { schema: { type: 'string' } } } },
            '403': err('not an admin'),
            '503': err('the check itself failed; try again'),
          },
        }),
      },
      '/proxy/routes': {
        get: op('every routable workspace as a Traefik dynamic-configuration document (for a proxy that takes routes instead of asking per request)', {
          responses: { '200': ok('http.routers and http.services', { type: 'object', properties: { http: { type: 'object' } }, required: ['http'] }) },
        }),
      },
      '/workspaces/{id}/migrate': {
        parameters: [idParam],
        post: op('move the workspace and its data to another server (?wait=true for the outcome)', {
          body: s.migrateWorkspaceBody,
          parameters: queryParams(s.waitQuery),
          responses: {
            '202': ok('started'),
            '200': ok('moved'),
            '404': err('no such workspace'),
            '409': err('rolled back, or not possible in its state'),
            '422': err('no server but its own could ever take the workspace (its tier or constraints), or targetServer is not registered (unsatisfiable; details.fields names it)'),
            '503': { ...err('no other server can take it now (no_capacity, with Retry-After; details.detail says why each was excluded); with ?wait=true also when the migration found none and rolled back'), headers: placementRetryAfter },
          },
        }),
      },
      '/servers/{id}/drain': {
        parameters: [idParam],
        post: op('cordon the server and migrate every workspace off it', { body: s.drainBody, responses: { '202': ok('started'), '404': missing, '409': err('a drain is already running') } }),
        get: op('the drain’s progress: each workspace’s phase, bytes copied, what blocks it', { responses: { '200': ok('progress'), '404': err('no drain for this server') } }),
      },
      '/servers/{id}/drain/{action}': {
        parameters: [idParam, { name: 'action', in: 'path', required: true, schema: { type: 'string', enum: ['pause', 'resume', 'cancel'] } }],
        post: op('steer a running drain', { responses: { '202': ok('signalled'), '404': err('no drain for this server') } }),
      },
      '/backups': {
        get: op('snapshots in the repository and recent backup runs', {
          parameters: queryParams(s.listBackupsQuery),
          responses: {
            '200': ok('a page of snapshots (newest first), the cursor of the next page, and recent runs', {
              type: 'object',
              properties: { repository: { type: 'string' }, snapshots: { type: 'array', items: ref('Snapshot') }, nextCursor: { type: ['string', 'null'] }, runs: { type: 'array', items: ref('BackupRun') } },
            }),
            '503': err('the repository cannot be opened (wrong password, unreachable)'),
          },
        }),
        post: op('start a backup run now (?wait=true for its result)', {
          body: s.startBackupBody,
          parameters: queryParams(s.waitQuery),
          responses: { '202': ok('started'), '200': ok('finished'), '500': err('the run failed; the message says what failed') },
        }),
      },
      '/backups/restore': {
        post: op('restore a workspace volume (in place or into a new volume) or the database (into a new database)', {
          body: s.restoreBody,
          parameters: queryParams(s.waitQuery),
          responses: { '202': ok('started'), '200': ok('restored'), '404': err('no such snapshot or workspace'), '409': err('not possible now (target exists, restore running)'), '503': err('the repository cannot be opened') },
        }),
      },
      '/cutovers': {
        post: op('start the GCP → self-hosted cutover of a zone: pre-flight, approval, DNS switch, health watch', {
          body: s.cutoverBody,
          responses: { '202': ok('started; follow it at /cutovers/{id}'), '409': err('a cutover of this zone is running') },
        }),
      },
      '/cutovers/{id}': {
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^cutover-[0-9a-f]{32}$' } }],
        get: op('phase, checklist, captured records, probe history', { responses: { '200': ok('the cutover'), '404': err('no such cutover') } }),
      },
      ...Object.fromEntries(
        ['approve', 'rollback'].map((a) => [
          `/cutovers/{id}/${a}`,
          {
            parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^cutover-[0-9a-f]{32}$' } }],
            post: op(a === 'approve' ? 'approve the switch' : 'roll back: every record as captured (and the database, if the plan says so)', {
              ...(a === 'rollback' ? { body: s.rollbackBody } : {}),
              responses: { '202': ok('signalled'), '404': err('no such cutover'), '409': err('the cutover has ended') },
            }),
          },
        ]),
      ),
      '/v1/models': { get: op('models on offer (OpenAI-compatible)', { security: user, responses: { '200': ok('model list') } }) },
      '/v1/chat/completions': {
        post: op('chat completion, streamed (SSE) or not (OpenAI-compatible); routed to the user’s own provider or OpenRouter', {
          security: user,
          body: chatBody,
          responses: {
            '200': ok('completion or text/event-stream'),
            '402': err('Podex credit, less calls in flight, does not cover the most this call can cost'),
            '409': err('a stored provider key no longer opens: enter it again'),
            '502': err('every provider failed'),
          },
        }),
      },
      '/v1/jobs': { post: op('a durable completion run as a workflow', { security: user, body: chatBody, responses: { '202': ok('started') } }) },
      '/v1/jobs/{id}': { get: op('a job’s status and result', { security: user, responses: { '200': ok('the job'), '404': err('no such job') } }) },
      '/v1/providers': { get: op('the user’s own providers (never their keys)', { security: user, responses: { '200': ok('providers') } }) },
      '/v1/providers/{provider}': {
        parameters: [{ name: 'provider', in: 'path', required: true, schema: { type: 'string', enum: ['anthropic', 'openai', 'ollama'] } }],
        put: op('store the user’s key (or Ollama URL: https to public addresses only, unless LLM_PROVIDER_ALLOW lists the host; 400 naming baseUrl otherwise), encrypted at rest', { security: user, responses: { '204': ok('stored') } }),
        delete: op('forget it', { security: user, responses: { '204': ok('removed'), '404': err('none stored') } }),
      },
      '/v1/credits': {
        get: op('the user’s Podex credit balance (USD, at least six places, up to 10^-12)', { security: user, responses: { '200': ok('balance', creditBalance) } }),
      },
      '/credits/{userId}': {
        parameters: [
          { name: 'userId', in: 'path', required: true, schema: { type: 'string' } },
          { name: 'Idempotency-Key', in: 'header', required: true, schema: { type: 'string', pattern: '^[\\x21-\\x7e]{8,255}$' }, description: 'one per top-up: a repeat applies nothing' },
        ],
        post: op('add Podex credits to a user, once per Idempotency-Key', {
          body: topUpBody,
          responses: {
            '200': {
              ...ok('the balance after this top-up (a repeat answers the same, with Idempotent-Replayed: true)', { type: 'object', properties: { userId: { type: 'string' }, ...creditBalance.properties }, required: ['userId', 'balanceUsd'] }),
              headers: { 'Idempotent-Replayed': { schema: { type: 'string', enum: ['true'] }, description: 'present when the key was already applied' } },
            },
            '422': err('the Idempotency-Key was used for another user or amount, or the balance would exceed 99999999.999999999999 USD'),
          },
        }),
      },
      '/metrics': { get: op('Prometheus metrics for admins (aggregate counts only); Prometheus scrapes METRICS_ADDRESS without credentials', { security: admin, responses: { '200': { description: 'text/plain; version=0.0.4', content: { 'text/plain': { schema: { type: 'string' } } } } } }) },
      '/codec/encode': {
        post: op('Temporal remote codec: encrypt payloads as this deployment does (admins; for the Temporal UI and CLI)', {
          body: s.codecPayloads,
          responses: { '200': ok('the payloads, encoded', json(s.codecPayloads)), '422': err('the payloads could not be encoded') },
        }),
      },
      '/codec/decode': {
        post: op('Temporal remote codec: decrypt payloads stored in Temporal (admins; they hold users’ prompts)', {
          body: s.codecPayloads,
          responses: { '200': ok('the payloads, decoded', json(s.codecPayloads)), '422': err('a payload no configured key opens') },
        }),
      },
      '/users/{id}/limits': {
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        get: op('a user’s plan, limits, overrides and usage (a user: their own; admins: anyone’s)', { security: user, responses: { '200': ok('the limits', ref('UserLimits')) } }),
        put: op('replace a user’s overrides (a field left out or null follows the plan); audited', {
          body: s.userLimitsBody,
          responses: { '200': ok('the limits now', ref('UserLimits')) },
        }),
      },
      '/audit': {
        get: op('admin actions, newest first', {
          parameters: queryParams(s.auditQuery),
          responses: { '200': ok('entries', listOf('entries', 'AuditEntry', { next: { type: ['string', 'null'] } })) },
        }),
      },
    },
  };
}
