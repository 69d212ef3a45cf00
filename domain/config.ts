/**
 * The orchestrator's configuration: one schema, parsed once at start-up from the
 * environment. A bad or missing variable fails fast with a message naming it.
 * Compute is Docker only; there are no cloud-provider settings.
 */
import { z } from 'zod';
import { CHECK_SUBSET, DEFAULT_RETENTION } from './backup';
import { LOG_FORMATS } from './log-format';

/** Why a TEMPORAL_PAYLOAD_KEYS value is not id:key[,id:key…] with 32-byte keys, or null. Pure: the codec in lib/ parses the same form. */
export function payloadKeysProblem(v: string): string | null {
  const entries = v.split(',').map((s) => s.trim()).filter(Boolean);
  if (entries.length === 0) return 'no keys';
  const ids = new Set<string>();
  for (const e of entries) {
    const m = /^([A-Za-z0-9._-]{1,64}):(.+)$/.exec(e);
    if (!m || ids.has(m[1])) return 'bad or repeated id';
    ids.add(m[1]);
    const ok = /^[0-9a-fA-F]{64}$/.test(m[2]) || (/^[A-Za-z0-9+/]{43}=?$/.test(m[2]) && Buffer.from(m[2], 'base64').length === 32);
    if (!ok) return `key ${m[1]} is not 32 bytes`;
  }
  return null;
}
import { parseAllowEntry } from './outbound';
import { PLAN_NAMES } from './quotas';

/** The most capacity placement may promise per unit a server has (the API bounds server totals by it). */
export const MAX_OVERCOMMIT_RATIO = 10;

const port = z.coerce.number().int().min(1).max(65535);
const positiveInt = z.coerce.number().int().positive();
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));
const list = z
  .string()
  .optional()
  .transform((v) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean));
const octet = '(25[0-5]|2[0-4]\\d|1?\\d?\\d)';
const IPV4_CIDR = new RegExp(`^${octet}(\\.${octet}){3}(/(3[0-2]|[12]?\\d))?$`);
const IPV6_CIDR = /^(?=.*:)[0-9a-fA-F:.]{2,45}(\/(12[0-8]|1[01]\d|[1-9]?\d))?$/;
function isAddressOrCidr(v: string): boolean {
  return IPV4_CIDR.test(v) || IPV6_CIDR.test(v);
}
const postgresUrl = z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgresql:// URL');
const redisUrl = z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL');

export const envSchema = z
  .object({
    /** `production` makes the daemon audit strict by default, requires TEMPORAL_PAYLOAD_KEYS and refuses `*` in CORS_ORIGINS. */
    NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
    /** The lowest level written to the log. */
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** JSON lines, pretty lines, or `auto`: pretty when stdout is a terminal (npm start's supervisor decides for its children). */
    LOG_FORMAT: z.enum(LOG_FORMATS).default('auto'),
    /** The API's HTTP port. */
    PORT: port.default(8080),
    /** The address the API listens on: loopback by default, so workspaces on this host cannot reach it (a container sets 0.0.0.0). */
    API_HOST: z.string().regex(/^[0-9a-fA-F.:]+$/, 'must be an IP address such as 127.0.0.1 or 0.0.0.0').default('127.0.0.1'),
    /** host:port where the API serves /metrics without credentials (a private address Prometheus scrapes); unset: /metrics on PORT needs an admin. */
    METRICS_ADDRESS: z
      .string()
      .regex(/^[^\s:]+:\d+$/, 'must be host:port')
      .optional()
      .or(z.literal('').transform(() => undefined)),

    /** The PostgreSQL registry, `postgresql://user:password@host:port/database`. @secret */
    DATABASE_URL: postgresUrl,
    /** How long opening a database connection (or waiting for a free one in the pool) may take before the request fails: a 503 from the API. */
    DATABASE_CONNECT_TIMEOUT_MS: positiveInt.default(2_000),
    /** How long one query of the API may wait for its answer (a hung server, not a slow plan: keep it well above the slowest query). */
    DATABASE_QUERY_TIMEOUT_MS: positiveInt.default(30_000),
    /** Redis for rate limits, caches, locks and events, `redis://` or `rediss://` (the database index in the path). @secret */
    REDIS_URL: redisUrl,
    /** How long a Redis command may wait, also while the connection is being re-established; past it the caller degrades (the rate limiter lets the request through). */
    REDIS_COMMAND_TIMEOUT_MS: positiveInt.default(1_000),
    /** Signs and verifies the API's JWTs (HS256), at least 32 characters. @secret */
    JWT_SECRET_KEY: z.string().min(32, 'must be at least 32 characters'),
    /** The `X-Internal-API-Key` other Podex services call the API with (admin rights, its own rate limit), at least 16 characters. @secret */
    INTERNAL_API_KEY: z.string().min(16, 'must be at least 16 characters'),
    /** Browser origins allowed to call the API (CORS), comma-separated; others get no CORS headers. */
    CORS_ORIGINS: list,

    /** The Temporal frontend, host:port. */
    TEMPORAL_ADDRESS: z.string().regex(/^[^\s:]+:\d+$/, 'must be host:port').default('127.0.0.1:7233'),
    /** The Temporal namespace of every workflow and schedule. */
    TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
    /** The task queue the worker polls and the API starts workflows on. */
    TEMPORAL_TASK_QUEUE: z.string().min(1).default('podex-orchestrator'),
    /** Workflow tasks one worker runs at once (the SDK's default is 40; a burst of creates needs more). */
    WORKER_MAX_WORKFLOW_TASKS: positiveInt.default(200),
    /** Activities one worker runs at once (Docker calls wait on the engines, not on this process). */
    WORKER_MAX_ACTIVITIES: positiveInt.default(400),
    /** host:port where the worker serves the Temporal SDK's Prometheus metrics (off when unset). */
    WORKER_METRICS_ADDRESS: z
      .string()
      .regex(/^[^\s:]+:\d+$/, 'must be host:port')
      .optional()
      .or(z.literal('').transform(() => undefined)),
    /** The Temporal Web UI: the console links into it, and its origin may call the codec endpoint (CORS). */
    TEMPORAL_UI_URL: z.string().url().default('http://127.0.0.1:8233'),
    /** Client certificate for mutual TLS to Temporal; set together with TEMPORAL_TLS_KEY_FILE. */
    TEMPORAL_TLS_CERT_FILE: optionalString,
    /** The key of TEMPORAL_TLS_CERT_FILE. */
    TEMPORAL_TLS_KEY_FILE: optionalString,
    /** CA that verifies Temporal's server certificate; setting it turns TLS on. */
    TEMPORAL_TLS_CA_FILE: optionalString,
    /** The name Temporal's server certificate must carry, when not TEMPORAL_ADDRESS's host. */
    TEMPORAL_TLS_SERVER_NAME: optionalString,
    /** API key for Temporal Cloud; setting it turns TLS on. @secret */
    TEMPORAL_API_KEY: optionalString,
    /** Deadline of each call the API makes to Temporal (a start, a signal, a query; a long poll gets its own): an unreachable server is a 503, not a wait. */
    TEMPORAL_RPC_TIMEOUT_MS: positiveInt.default(5_000),
    /** Keys that encrypt every Temporal payload: `id:key[,id:key…]` (32 bytes, base64 or hex); the first encodes, all decode (rotation). Required in production. @secret */
    TEMPORAL_PAYLOAD_KEYS: optionalString.refine((v) => v === undefined || payloadKeysProblem(v) === null, { message: 'must be id:key[,id:key…] with 32-byte keys (base64 or hex) and unique ids' }),

    /** CA that signed every workspace server's Docker certificate (mutual TLS). */
    DOCKER_TLS_CA_FILE: z.string().min(1),
    /** This process's client certificate for the Docker engines. */
    DOCKER_TLS_CERT_FILE: z.string().min(1),
    /** The key of DOCKER_TLS_CERT_FILE. */
    DOCKER_TLS_KEY_FILE: z.string().min(1),
    /** How long one Docker API call may take before it fails. */
    DOCKER_TIMEOUT_MS: positiveInt.default(30_000),
    /** The image workspaces run (admins may name another per workspace). */
    WORKSPACE_IMAGE: z.string().min(1).default('podex/workspace:latest'),
    /** Root filesystem archive of the workspace image, imported into an engine that lacks it. */
    WORKSPACE_IMAGE_ARCHIVE: optionalString,
    /** The platform's tools image every helper container on a workspace server runs from (volume checks, restores, probes); never a workspace image. */
    TOOLS_IMAGE: z.string().min(1).default('podex/tools:latest'),
    /** Root filesystem archive of the tools image, imported into an engine that lacks it. */
    TOOLS_IMAGE_ARCHIVE: optionalString,
    /** Read by no process today: workspace volumes live in each engine's Docker data root. */
    COMPUTE_WORKSPACE_VOLUME_BASE: z.string().startsWith('/', 'must be an absolute path').default('/var/lib/podex/workspaces'),

    /**
     * Where users open workspaces: `ws-{id}.` + this URL's host name (with its scheme and port),
     * served by the Workspace Proxy. Locally http://localhost:8880 (`*.localhost` is loopback).
     */
    WORKSPACE_BASE_URL: z.string().url().default('https://podex.dev'),
    /** Where a browser without a session is sent to sign in (`?next=` carries the workspace URL). */
    WORKSPACE_SIGN_IN_URL: z.string().url().default('https://app.podex.dev/login'),
    /** How long the cookie a workspace host hands out lasts. */
    WORKSPACE_SESSION_MINUTES: positiveInt.max(24 * 60).default(480),

    /** Proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For / CF-Connecting-IP name the client; from any other peer they are ignored. */
    TRUSTED_PROXIES: list.pipe(z.array(z.string().refine(isAddressOrCidr, 'each entry must be an IP address or CIDR such as 10.0.0.0/8'))),
    /** Replaced by TRUSTED_PROXIES: a deployment still setting it fails fast rather than trusting nobody unknowingly. */
    TRUST_PROXY: z.undefined({ message: 'is replaced by TRUSTED_PROXIES (the proxy addresses or CIDRs to trust)' }).optional(),
    /** Requests per minute from one client address (internal-key calls are counted apart). */
    RATE_LIMIT_PER_MINUTE: positiveInt.default(100),
    /** Requests per minute by one user or admin, whatever the addresses they come from. */
    RATE_LIMIT_PER_USER_PER_MINUTE: positiveInt.default(100),
    /** Requests per minute with the internal API key (service-to-service) from one address. */
    RATE_LIMIT_INTERNAL_PER_MINUTE: positiveInt.default(6000),
    /** Open workspace event streams (SSE) one user may hold on one API process. */
    SSE_MAX_PER_USER: positiveInt.default(10),
    /** Capacity placement may promise per unit a server has (1: none overcommitted). */
    OVERCOMMIT_RATIO: z.coerce.number().min(0.1).max(MAX_OVERCOMMIT_RATIO).default(1),
    /** The plan (domain/quotas.ts) of a user an admin has not given one through PUT /users/:id/limits. */
    DEFAULT_USER_PLAN: z.enum(PLAN_NAMES).default('free'),
    /** Migrations in flight across the whole fleet when a request does not say (drains give their own). */
    MIGRATION_MAX_PARALLEL: positiveInt.default(4),
    /** How long a migrated workspace must stay healthy on its target before the switch. */
    MIGRATION_HOLD_HEALTHY_SECONDS: z.coerce.number().int().min(0).max(600).default(10),
    /** Any failed hardening check keeps a new server out of service; default true when NODE_ENV=production, else only required checks do (the rest are reported as waived). */
    STRICT_DAEMON_AUDIT: z.enum(['true', 'false']).optional(),

    /** `true`: the worker creates or updates its Temporal Schedules (heartbeat, backup, LLM prices) at start. */
    ENSURE_SCHEDULES: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
    /** How often the heartbeat schedule reads every server's usage. */
    HEARTBEAT_INTERVAL_SECONDS: positiveInt.default(30),
    /** Missed heartbeats in a row that make a server `unreachable`. */
    HEARTBEAT_MISSED_THRESHOLD: positiveInt.default(3),

    /** Where the orchestrator keeps its own files on the platform server (the default restic repository lives here). */
    DATA_DIR: z.string().startsWith('/', 'must be an absolute path').default('/var/lib/podex'),
    /** Any restic repository string (a path, s3:…, b2:…, rest:…); default DATA_DIR/restic. Credentials for S3/B2 come from their own env. */
    RESTIC_REPOSITORY: optionalString,
    /** File holding the backup repository's password (the password itself never goes in the environment); required with RESTIC_REPOSITORY. */
    RESTIC_PASSWORD_FILE: optionalString,
    /** restic's cache folder (restic's own default when unset). */
    RESTIC_CACHE_DIR: optionalString,
    /** The pg_dump binary the database backup runs (a path, or a name on PATH). */
    PG_DUMP_PATH: z.string().min(1).default('pg_dump'),
    /** Temporal Schedule id of the fleet heartbeat. */
    HEARTBEAT_SCHEDULE_ID: z.string().min(1).default('fleet-heartbeat'),
    /** Temporal Schedule id of the daily backup. */
    BACKUP_SCHEDULE_ID: z.string().min(1).default('backup-daily'),
    /** Five-field cron, UTC. */
    BACKUP_CRON: z
      .string()
      .regex(/^\s*(\S+\s+){4}\S+\s*$/, 'must be a five-field cron expression')
      .default('0 3 * * *'),
    /** A run missed while the platform server was down still starts if it comes back within this window. */
    BACKUP_CATCHUP_WINDOW_MINUTES: positiveInt.default(360),
    /** Workspace volumes streamed into restic at once. */
    BACKUP_PARALLEL: positiveInt.max(32).default(2),
    /** How much of the repository `restic check --read-data-subset` reads after each backup. */
    BACKUP_CHECK_SUBSET: z.string().regex(CHECK_SUBSET, 'must be n/t, a percentage or a size, as restic check --read-data-subset takes').default('10%'),
    /** Daily snapshots `restic forget` keeps. */
    BACKUP_KEEP_DAILY: z.coerce.number().int().min(0).default(DEFAULT_RETENTION.daily),
    /** Weekly snapshots `restic forget` keeps. */
    BACKUP_KEEP_WEEKLY: z.coerce.number().int().min(0).default(DEFAULT_RETENTION.weekly),
    /** Monthly snapshots `restic forget` keeps. */
    BACKUP_KEEP_MONTHLY: z.coerce.number().int().min(0).default(DEFAULT_RETENTION.monthly),

    /** A Cloudflare API token with DNS edit on the zones a cutover switches. @secret */
    CLOUDFLARE_API_TOKEN: optionalString,
    /** Cloudflare's API. */
    CLOUDFLARE_BASE_URL: z.string().url().default('https://api.cloudflare.com/client/v4'),
    /** Podex's OpenRouter key: calls paid with Podex credits go through it. @secret */
    OPENROUTER_API_KEY: optionalString,
    /** OpenRouter's API. */
    OPENROUTER_BASE_URL: z.string().url().default('https://openrouter.ai/api/v1'),
    /** The `HTTP-Referer` OpenRouter attributes Podex's calls to. */
    OPENROUTER_REFERER: z.string().url().default('https://podex.dev'),
    /** The `X-Title` OpenRouter shows for Podex's calls. */
    OPENROUTER_TITLE: z.string().min(1).default('Podex'),
    /** OpenAI's API, for users' own OpenAI keys. */
    OPENAI_BASE_URL: z.string().url().default('https://api.openai.com/v1'),
    /** Anthropic's OpenAI-compatible API, for users' own Anthropic keys. */
    ANTHROPIC_BASE_URL: z.string().url().default('https://api.anthropic.com/v1/'),
    /** Podex's markup on OpenRouter's price (seed Task 9.5). */
    LLM_MARKUP: z.string().regex(/^\d+(\.\d+)?$/, 'must be a decimal number such as 1.2').default('1.2'),
    /** Models tried, in order, when the requested one fails upstream (aliases). */
    LLM_FALLBACK_MODELS: list,
    /** 32 bytes, hex or base64: encrypts users' provider keys at rest. @secret */
    LLM_KEYS_ENCRYPTION_KEY: optionalString,
    /** Retries of a provider's 429 or 5xx answer before the next provider is tried. */
    LLM_UPSTREAM_RETRIES: z.coerce.number().int().min(0).max(10).default(2),
    /** The longest one call to a provider may take, a stream included. */
    LLM_UPSTREAM_TIMEOUT_MS: positiveInt.default(600_000),
    /** Output tokens a Podex-paid call holds credit for (and is capped at) when neither the request nor OpenRouter's catalog gives a maximum. */
    LLM_DEFAULT_MAX_OUTPUT_TOKENS: positiveInt.default(4096),
    /** How long a credit hold counts against the balance if its process dies before settling it; longer than any call lasts. */
    LLM_HOLD_TTL_SECONDS: positiveInt.default(3600),
    /** Temporal Schedule id of the daily OpenRouter price sync. */
    LLM_PRICE_SCHEDULE_ID: z.string().min(1).default('llm-prices-daily'),
    /** Hosts, addresses and CIDRs a user's provider URL (Ollama) may reach though not public, and the only ones over plain http; empty: public https only. */
    LLM_PROVIDER_ALLOW: list.refine((l) => l.every((e) => parseAllowEntry(e)), { message: 'must list host names, addresses or CIDR networks, comma-separated' }),
  })
  .superRefine((env, ctx) => {
    const both = (a: keyof typeof env, b: keyof typeof env) => {
      if (Boolean(env[a]) !== Boolean(env[b])) {
        ctx.addIssue({ code: 'custom', path: [env[a] ? b : a], message: `must be set together with ${env[a] ? a : b}` });
      }
    };
    both('TEMPORAL_TLS_CERT_FILE', 'TEMPORAL_TLS_KEY_FILE');
    if (env.NODE_ENV === 'production' && !env.TEMPORAL_PAYLOAD_KEYS) {
      ctx.addIssue({ code: 'custom', path: ['TEMPORAL_PAYLOAD_KEYS'], message: "is required in production: Temporal's histories would hold users' prompts in clear" });
    }
    if (env.TOOLS_IMAGE === env.WORKSPACE_IMAGE) {
      ctx.addIssue({ code: 'custom', path: ['TOOLS_IMAGE'], message: 'must not be the workspace image: helpers never run a workspace image' });
    }
    if (env.RESTIC_REPOSITORY && !env.RESTIC_PASSWORD_FILE) {
      ctx.addIssue({ code: 'custom', path: ['RESTIC_PASSWORD_FILE'], message: 'is required when RESTIC_REPOSITORY is set' });
    }
    if (env.NODE_ENV === 'production' && env.CORS_ORIGINS.includes('*')) {
      ctx.addIssue({ code: 'custom', path: ['CORS_ORIGINS'], message: "may not contain '*' in production" });
    }
  })
  .transform((env) => ({ ...env, STRICT_DAEMON_AUDIT: env.STRICT_DAEMON_AUDIT === undefined ? env.NODE_ENV === 'production' : env.STRICT_DAEMON_AUDIT === 'true' }));

export type Config = z.output<typeof envSchema>;

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
}

/** Parses an environment map into a Config; throws ConfigError naming every bad variable. */
export function parseConfig(env: Record<string, string | undefined>): Config {
  const result = envSchema.safeParse(env);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const name = issue.path.join('.') || '(environment)';
    const missing = issue.code === 'invalid_type' && env[name] === undefined;
    return `${name}: ${missing ? 'is required' : issue.message}`;
  });
  throw new ConfigError(problems);
}
