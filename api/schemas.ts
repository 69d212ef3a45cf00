/** Request and response shapes of the API: validation and the OpenAPI document come from these. */
import { isIP } from 'node:net';
import { z } from 'zod';
import { MAX_OVERCOMMIT_RATIO } from '../domain/config';
import { planProblems } from '../domain/cutover';
import { PLAN_NAMES } from '../domain/quotas';
import { TIER_NAMES } from '../domain/tiers';
import { MAX_PREVIEW_PORTS, previewPortsProblem } from '../domain/workspace-routes';
import type { BackupState } from '../workflows/backup';
import type { CutoverState } from '../workflows/cutover';
import type { DrainedWorkspace, DrainState } from '../workflows/drain-server';
import type { MigrationResult } from '../workflows/migrate-workspace';
import type { RestoreResult } from '../workflows/restore';
import type { WorkspaceState } from '../workflows/workspace';

const hostname = z
  .string()
  .min(1)
  .max(255)
  // Lengths are min/max above, not a lookahead: generators (schemathesis) cannot draw a lookahead's strings efficiently.
  .regex(/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/, 'must be a DNS hostname');
const labels = z.record(z.string().regex(/^[a-zA-Z0-9_./-]{1,63}$/, 'label keys: letters, digits, _ . / -'), z.string().max(255));

// Bounds of the numbers a request may carry: each fits the column it is stored in (prisma/schema.prisma) and makes sense for it.

/** PostgreSQL's `integer` (a Prisma Int column): a larger value overflows it. */
export const INT32_MAX = 2_147_483_647;
/** The most a JavaScript number holds exactly (a BigInt id is paged with one). */
export const SAFE_INT_MAX = Number.MAX_SAFE_INTEGER;
/**
 * A server's memory (MB) and disk (GB): reservations add up to its total × OVERCOMMIT_RATIO (at
 * most MAX_OVERCOMMIT_RATIO) in integer columns, so the total stays below INT32_MAX / that.
 */
export const SERVER_CAPACITY_MAX = Math.floor(INT32_MAX / MAX_OVERCOMMIT_RATIO);
/** A whole number from min to max, both included. */
export const intIn = (min: number, max: number) => z.number().int().min(min).max(max);
/** A number, fractions allowed, from min to max. */
export const numberIn = (min: number, max: number) => z.number().min(min).max(max);
/** A whole number from min to max read from a query string (`?limit=10`). */
export const queryIntIn = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
/**
 * A duration in `unit` up to max: at least a minute, as a workflow turns it into a timer
 * (a tiny number prints in exponent form, which no duration parser reads).
 */
export const durationIn = (unit: 'minutes' | 'hours' | 'days', max: number) => z.number().min({ minutes: 1, hours: 1 / 60, days: 1 / 1440 }[unit], 'must be at least one minute').max(max);
export const port = intIn(1, 65535);
const pageLimit = queryIntIn(1, 500).default(100);
const pageOffset = queryIntIn(0, INT32_MAX).default(0);

/**
 * A cross-field check that runs once the fields it reads are valid, whatever else is wrong (zod
 * would skip it while any field is invalid, and run it on fields that are): its problem is
 * reported beside theirs, never instead of them or on top of the same field's own.
 */
export const whenValid = <S extends z.ZodRawShape>(shape: S, ...keys: (keyof S & string)[]) => {
  const part = z.object(Object.fromEntries(keys.map((k) => [k, shape[k]])));
  return { when: (payload: { value: unknown }) => part.safeParse(payload.value).success };
};

export const uuidParam = z.object({ id: z.uuid({ message: 'must be a UUID' }) });
export const windowParams = z.object({ id: z.uuid(), windowId: z.uuid() });

export const createServerBody = z
  .object({
    name: z.string().min(1).max(255),
    hostname,
    ipAddress: z.union([z.ipv4(), z.ipv6()], { message: 'must be an IPv4 or IPv6 address' }),
    privateAddress: z
      .union([z.ipv4(), z.ipv6()], { message: 'must be an IPv4 or IPv6 address' })
      .optional()
      .describe('the server’s private-network address: workspace ports are published there and the Workspace Proxy reaches them (default: ipAddress)'),
    dockerPort: port.default(2376),
    sshPort: port.default(22),
    region: z.string().min(1).max(50).optional(),
    provider: z.string().min(1).max(50).optional(),
    labels: labels.default({}),
    gpuType: z.string().max(50).optional(),
    strict: z.boolean().optional().describe('keep the server out of service if any hardening check fails'),
  })
  .strict();

export const updateServerBody = z
  .object({
    name: z.string().min(1).max(255),
    region: z.string().min(1).max(50).nullable(),
    provider: z.string().min(1).max(50).nullable(),
    labels,
    gpuType: z.string().max(50).nullable(),
    totalCpu: intIn(0, 4096),
    totalMemoryMb: intIn(0, SERVER_CAPACITY_MAX),
    totalDiskGb: intIn(0, SERVER_CAPACITY_MAX),
    status: z.enum(['active', 'error']).describe("take a server out of service ('error') or back"),
    privateAddress: z
      .union([z.ipv4(), z.ipv6()], { message: 'must be an IPv4 or IPv6 address' })
      .nullable()
      .describe('only on a server without workspaces (their ports are bound to the old address); null: ipAddress'),
    strict: z.boolean(),
  })
  .partial()
  .strict()
  .refine((b) => Object.keys(b).length > 0, { message: 'nothing to update' });

export const listServersQuery = z
  .object({
    status: z.enum(['pending', 'active', 'error', 'unreachable', 'draining', 'drained']).optional(),
    limit: pageLimit,
    offset: pageOffset,
  })
  .strict();

export const availableQuery = z.object({ tier: z.enum(TIER_NAMES as [string, ...string[]]).default('free') }).strict();

const drainFields = {
  deadline: z.iso.datetime({ offset: true }).describe('when onDeadline decides about what is left'),
  maxParallel: intIn(1, 64).optional().describe('migrations in flight across the whole fleet'),
  onDeadline: z.enum(['force', 'abort']).default('force'),
  strategy: z.enum(['SPREAD', 'BEST_FIT', 'AFFINITY']).optional(),
  paused: z.boolean().default(false).describe('cordon now, move nothing until resumed'),
};
export const drainBody = z
  .object(drainFields)
  .strict()
  .refine((b) => Date.parse(b.deadline) > Date.now(), { message: 'must be in the future', path: ['deadline'], ...whenValid(drainFields, 'deadline') });
export const drainActionParams = z.object({ id: z.uuid({ message: 'must be a UUID' }), action: z.enum(['pause', 'resume', 'cancel']) });

const maintenanceFields = {
  // PostgreSQL has no year 0 (an ISO 0000 year, or 0001 less an offset): such a time failed the insert (a 500).
  startsAt: z.iso
    .datetime({ offset: true })
    .refine((v) => Date.parse(v) >= 0, 'must be 1970 or later')
    .optional()
    .describe('default: now'),
  endsAt: z.iso.datetime({ offset: true }),
  reason: z.string().max(500).optional(),
};
export const maintenanceBody = z
  .object(maintenanceFields)
  .strict()
  .refine((b) => Date.parse(b.endsAt) > (b.startsAt ? Date.parse(b.startsAt) : Date.now()), {
    message: 'must be after startsAt (and in the future)',
    path: ['endsAt'],
    ...whenValid(maintenanceFields, 'startsAt', 'endsAt'),
  });

export const auditQuery = z
  .object({
    targetType: z.string().max(32).optional(),
    targetId: z.string().max(64).optional(),
    limit: pageLimit,
    before: queryIntIn(1, SAFE_INT_MAX).optional().describe('entries with a smaller id (paging)'),
  })
  .strict();

const capacity = z.object({ cpu: z.number(), memoryMb: z.number(), diskGb: z.number() });

export const serverView = z.object({
  id: z.uuid(),
  name: z.string(),
  hostname: z.string(),
  ipAddress: z.string(),
  privateAddress: z.string().nullable(),
  dockerPort: z.number(),
  sshPort: z.number(),
  status: z.string(),
  cordoned: z.boolean(),
  inMaintenance: z.boolean(),
  architecture: z.string().nullable(),
  dockerRuntime: z.string().nullable(),
  hasGpu: z.boolean(),
  gpuType: z.string().nullable(),
  gpuCount: z.number(),
  region: z.string().nullable(),
  provider: z.string().nullable(),
  labels: z.record(z.string(), z.unknown()),
  total: capacity.describe('schedulable capacity: what the engine reported at onboarding, or what its podex.capacity.* daemon labels declare'),
  hostCpus: z.number().nullable().describe('the engine’s real CPU count at onboarding; workspace CPU limits are capped at it (null: not onboarded since it was recorded)'),
  used: capacity.extend({ activeWorkspaces: z.number() }),
  reserved: capacity,
  free: capacity,
  lastHeartbeat: z.string().nullable(),
  missedHeartbeats: z.number(),
  lastError: z.string().nullable(),
  daemonAudit: z.unknown().nullable(),
  createdAt: z.string().nullable(),
  updatedAt: z.string().nullable(),
});

export const availableServerView = z.object({
  id: z.uuid(),
  name: z.string(),
  region: z.string().nullable(),
  architecture: z.string().nullable(),
  hasGpu: z.boolean(),
  gpuType: z.string().nullable(),
  free: capacity,
});

export const maintenanceView = z.object({
  id: z.uuid(),
  serverId: z.uuid(),
  startsAt: z.string(),
  endsAt: z.string(),
  reason: z.string().nullable(),
  createdBy: z.string(),
});

export const auditView = z.object({
  id: z.string(),
  actor: z.string(),
  action: z.string(),
  targetType: z.string(),
  targetId: z.string().nullable(),
  before: z.unknown().nullable(),
  after: z.unknown().nullable(),
  createdAt: z.string(),
});

export const errorView = z.object({
  error: z.string(),
  message: z.string(),
  details: z.unknown().optional(),
});

export const createWorkspaceBody = z
  .object({
    name: z.string().min(1).max(64).regex(/^[a-zA-Z0-9][a-zA-Z0-9 _.-]*$/, 'letters, digits, space, _ . -'),
    tier: z.enum(TIER_NAMES as [string, ...string[]]),
    server: z.union([z.literal('auto'), z.uuid({ message: "must be 'auto' or a server id from /servers/available" })]).default('auto'),
    strategy: z.enum(['SPREAD', 'BEST_FIT', 'AFFINITY']).default('SPREAD'),
    image: z.string().regex(/^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]+)?$/, 'must be an image reference').max(255).optional(),
    previewPorts: z
      .array(port)
      .max(MAX_PREVIEW_PORTS)
      .default([])
      .superRefine(
        (ports, ctx) => {
          const problem = previewPortsProblem(ports);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        },
        // Once each is a port: a port out of range is named by its own index already.
        { when: (payload) => z.array(port).safeParse(payload.value).success },
      )
      .describe(`container ports opened as {port}-ws-{id} (at most ${MAX_PREVIEW_PORTS}; published when the container is made, so only at creation)`),
    constraints: z
      .object({
        architecture: z.enum(['amd64', 'arm64']).optional(),
        region: z.string().min(1).max(50).optional(),
        labels: z.record(z.string().max(63), z.string().max(255)).optional(),
        gpu: z.object({ type: z.string().max(50).optional(), count: intIn(1, 16) }).strict().optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export const openWorkspaceQuery = z
  .object({ port: queryIntIn(1, 65535).optional().describe('a preview port (default: the IDE)') })
  .strict();
export const shareWorkspaceBody = z
  .object({
    port: port.describe('the preview port the link opens'),
    expiresInMinutes: intIn(1, 7 * 24 * 60).default(60),
  })
  .strict();

export const createWorkspaceQuery = z.object({ wait: z.enum(['true', 'false']).default('false') }).strict();
export const listWorkspacesQuery = z
  .object({
    status: z.string().max(20).optional(),
    owner: z.string().max(255).optional().describe('admins only'),
    limit: pageLimit,
    offset: pageOffset,
  })
  .strict();
export const migrateWorkspaceBody = z
  .object({
    targetServer: z.uuid({ message: 'must be a server id' }).optional(),
    strategy: z.enum(['SPREAD', 'BEST_FIT', 'AFFINITY']).optional(),
  })
  .strict();
export const deleteWorkspaceQuery = z.object({ keepVolume: z.enum(['true', 'false']).default('false') }).strict();

export const workspaceView = z.object({
  id: z.uuid(),
  ownerId: z.string(),
  name: z.string(),
  tier: z.string(),
  status: z.string(),
  statusReason: z.string().nullable(),
  serverId: z.string().nullable(),
  containerName: z.string().nullable(),
  volumeName: z.string().nullable(),
  networkName: z.string().nullable(),
  internalIp: z.string().nullable(),
  httpPort: z.number().nullable().describe('host port of the IDE on its server’s private address (changes at every start)'),
  sshPort: z.number().nullable(),
  url: z.string().describe('where its owner opens it, through the Workspace Proxy'),
  previews: z.array(z.object({ port: z.number(), url: z.string(), hostPort: z.number().nullable() })),
  assigned: z.object({ cpu: z.number().nullable(), memoryMb: z.number().nullable(), diskGb: z.number().nullable() }),
  cpuLimit: z
    .object({ tier: z.number(), applied: z.number(), hostCpus: z.number().nullable() })
    .describe('CPUs the container may use: the tier’s figure, capped at its server’s real CPU count (hostCpus; null when not known)'),
  diskLimit: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

const snapshotId = z.string().regex(/^[0-9a-f]{8,64}$/, 'must be a restic snapshot id (8 to 64 hex characters)');
export const startBackupBody = z
  .object({
    workspaceIds: z.array(z.uuid({ message: 'must be a workspace id' })).max(1000).optional().describe('only these workspaces (default: all with a volume)'),
    skipDatabase: z.boolean().optional(),
    parallel: intIn(1, 32).optional().describe('workspace volumes streamed at once'),
  })
  .strict();
export const waitQuery = z.object({ wait: z.enum(['true', 'false']).default('false') }).strict();
export const listBackupsQuery = z
  .object({
    kind: z.enum(['database', 'workspace']).optional(),
    workspaceId: z.uuid({ message: 'must be a workspace id' }).optional(),
    runs: queryIntIn(0, 100).default(20).describe('how many recent runs to include'),
    limit: pageLimit.describe('snapshots per page, newest first'),
    before: z.string().max(200).optional().describe('the nextCursor of the previous page'),
  })
  .strict();
const restoreFields = {
  snapshotId,
  workspaceId: z.uuid({ message: 'must be a workspace id' }).optional().describe('restore this workspace volume (its own snapshot)'),
  mode: z.enum(['in-place', 'new-volume']).default('in-place').describe('in-place stops the workspace, replaces its data and starts it again'),
  targetDatabase: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case database name (letters, digits, _)')
    .optional()
    .describe('restore a database snapshot into this new database'),
};
export const restoreBody = z
  .object(restoreFields)
  .strict()
  .superRefine(
    (b, ctx) => {
      if (!b.workspaceId === !b.targetDatabase) ctx.addIssue({ code: 'custom', path: ['workspaceId'], message: 'give exactly one of workspaceId and targetDatabase' });
    },
    whenValid(restoreFields, 'workspaceId', 'targetDatabase'),
  );
export const snapshotView = z.object({
  id: z.string(),
  time: z.string(),
  kind: z.enum(['database', 'workspace']).optional(),
  workspaceId: z.string().optional(),
  serverId: z.string().optional(),
  database: z.string().optional(),
  run: z.string().optional(),
});
export const backupRunView = z.object({
  workflowId: z.string(),
  trigger: z.string(),
  status: z.enum(['running', 'succeeded', 'failed']),
  snapshots: z.number().int(),
  bytes: z.number(),
  error: z.string().nullable(),
  startedAt: z.string(),
  finishedAt: z.string().nullable(),
});

const ipAddress = z.string().refine((v) => isIP(v) !== 0, 'must be an IPv4 or IPv6 address');
const HOST_NAME = /^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]*[a-z0-9])?\.?$/i;
const recordName = z
  .string()
  .max(253)
  .regex(/^(@|\*|(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9])?)*)$/i, 'must be @, *, *.sub or a name relative to the zone (a wildcard is a whole leftmost label, as Cloudflare requires)');
const recordFields = {
  name: recordName,
  type: z.enum(['A', 'AAAA', 'CNAME'], { message: 'must be A, AAAA or CNAME' }),
  content: z.string().min(1).max(255),
  proxied: z.boolean().default(true),
  ttl: intIn(1, 86400)
    .refine((t) => t === 1 || t >= 30, 'must be 1 (automatic) or 30–86400 seconds')
    .default(1),
};
export const cutoverRecord = z
  .object(recordFields)
  .strict()
  .superRefine(
    (r, ctx) => {
      const bad =
        (r.type === 'A' && isIP(r.content) !== 4 && 'must be an IPv4 address for an A record') ||
        (r.type === 'AAAA' && isIP(r.content) !== 6 && 'must be an IPv6 address for an AAAA record') ||
        (r.type === 'CNAME' && r.content !== '@' && !HOST_NAME.test(r.content) && 'must be a host name for a CNAME record');
      if (bad) ctx.addIssue({ code: 'custom', path: ['content'], message: bad });
    },
    whenValid(recordFields, 'type', 'content'),
  );
const cutoverFields = {
  zoneId: z.string().regex(/^[0-9a-f]{32}$/, 'must be a Cloudflare zone id (32 hex characters)'),
  targetIp: ipAddress.describe('the new platform server’s public address'),
  records: z.array(cutoverRecord).min(1).max(100).optional().describe('default: the Phase 8 table (@, www, app, api, *, coolify) for targetIp'),
  healthUrls: z.array(z.url({ message: 'must be a URL' }).max(2048)).min(1).max(20).describe('the new platform’s health URLs'),
  preflight: z
    .object({ backupMaxAgeHours: durationIn('hours', 720).default(24), serverLabels: z.record(z.string().max(63), z.string().max(255)).optional() })
    .strict()
    .optional(),
  autoApprove: z.boolean().default(false),
  approvalTimeoutHours: durationIn('hours', 720).default(72),
  lowerTtlTo: intIn(30, 3600).default(60),
  maxTtlWaitSeconds: intIn(0, 86400).default(3600),
  watch: z
    .object({ hours: durationIn('hours', 720).default(48), probeEveryMinutes: durationIn('minutes', 1440).default(5), failuresToRollback: intIn(1, 100).default(3) })
    .strict()
    .optional(),
  rollbackWindowDays: durationIn('days', 90).default(14),
  restoreDatabaseTo: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case database name').optional(),
  decommission: z.array(z.string().min(1).max(500)).max(100).optional(),
};
export const cutoverBody = z
  .object(cutoverFields)
  .strict()
  .superRefine(
    (plan, ctx) => {
      // Relative names only, so the zone's own name is not needed to find contradictions.
      for (const p of planProblems(plan.records ?? [], 'zone.invalid')) ctx.addIssue({ code: 'custom', path: p.field.split('.').map((k) => (/^\d+$/.test(k) ? Number(k) : k)), message: p.message });
    },
    whenValid(cutoverFields, 'records'),
  );
export const cutoverIdParam = z.object({ id: z.string().regex(/^cutover-[0-9a-f]{32}$/, 'must be a cutover id (cutover-<zone id>)') });
export const rollbackBody = z.object({ reason: z.string().max(500).optional() }).strict();

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const noNul = (s: string) => !s.includes('\0');
const execArg = z
  .string()
  .refine((a) => Buffer.byteLength(a) <= 8192, 'at most 8 KiB')
  .refine(noNul, 'must not contain NUL');
export const execBody = z
  .object({
    cmd: z
      .array(execArg)
      .min(1, 'give the command as a non-empty array of strings')
      .max(256)
      .refine((c) => c.length === 0 || c[0].length > 0, { message: 'the program (first item) must not be empty', path: [0] })
      .describe('the program and its arguments (no shell unless you run one)'),
    env: z
      .record(z.string().regex(ENV_NAME, 'a name is letters, digits and _, not starting with a digit'), z.string().max(32_768).refine(noNul, 'must not contain NUL'))
      .refine((e) => Object.keys(e).length <= 64, 'at most 64 variables')
      .optional()
      .describe('added to the container’s environment (never logged or audited, names only)'),
    workdir: z.string().max(4096).regex(/^\//, 'must be an absolute path').refine(noNul, 'must not contain NUL').optional(),
    timeoutSeconds: intIn(1, 3600).default(60).describe('then every process of the command is killed'),
    maxOutputBytes: intIn(0, 16 * 1024 * 1024).default(1024 * 1024).describe('stdout and stderr together; the rest is dropped (truncated: true)'),
  })
  .strict();
export const execResultView = z.object({
  stdout: z.string(),
  stderr: z.string(),
  exitCode: z.number().int().nullable().describe('null when the command was killed (timeout) or its end is unknown'),
  truncated: z.boolean(),
  timedOut: z.boolean(),
  durationMs: z.number().int(),
});
export const terminalQuery = z
  .object({
    cmd: z
      .union([execArg.refine((a) => a.length > 0, 'must not be empty'), z.array(execArg).min(1).max(256).refine((c) => c[0] !== '', { message: 'the program (first item) must not be empty', path: [0] })])
      .optional()
      .describe('the program (repeat cmd= for its arguments); default /bin/sh'),
    cols: queryIntIn(1, 1000).optional(),
    rows: queryIntIn(1, 1000).optional(),
  })
  .strict();

const limitValues = {
  maxWorkspaces: intIn(0, 10_000),
  maxCpu: numberIn(0, 100_000),
  maxMemoryMb: intIn(0, INT32_MAX),
  maxDiskGb: intIn(0, INT32_MAX),
  maxGpus: intIn(0, 1024),
  tiers: z.array(z.enum(TIER_NAMES as [string, ...string[]])).max(TIER_NAMES.length),
  serverChoice: z.boolean().describe('may pin a workspace to a server'),
};
const limitFields = { plan: z.enum(PLAN_NAMES), ...limitValues };
/** PUT replaces every override: a field left out or null follows the plan. */
export const userLimitsBody = z
  .object(Object.fromEntries(Object.entries(limitFields).map(([k, v]) => [k, v.nullable().optional()])) as { [K in keyof typeof limitFields]: z.ZodOptional<z.ZodNullable<(typeof limitFields)[K]>> })
  .strict();
export const userIdParam = z.object({ id: z.string().min(1).max(255) });
export const userLimitsView = z.object({
  userId: z.string(),
  plan: z.enum(PLAN_NAMES),
  limits: z.object(limitValues).describe('what applies: the plan’s values with the overrides on top'),
  overrides: z.object(limitFields).partial().describe('what an admin set for this user'),
  usage: z.object({ workspaces: z.number(), cpu: z.number(), memoryMb: z.number(), diskGb: z.number(), gpus: z.number() }),
});

/** Temporal's remote codec body (`POST /codec/encode|decode`), asked and answered: payloads as proto3 JSON (bytes in base64). */
const codecBase64 = z.string().regex(/^[A-Za-z0-9+/_-]*={0,2}$/, 'must be base64');
export const codecPayloads = z.object({
  payloads: z.array(z.object({ metadata: z.record(z.string(), codecBase64).optional(), data: codecBase64.optional() })).max(1000),
});

// --- What the routes answer (views) -------------------------------------------------------------
// Every 2xx body and every error body the API sends is one of these; api/openapi.ts turns them into
// the document's schemas, and test/contract.test.ts checks every answer against that document.

const isoTime = z.iso.datetime({ offset: true });
/** A workflow the request started or asked about, and where operators follow it. */
const workflowLink = { workflowId: z.string(), temporalUi: z.string() };

/** OpenAI's error body: what the `/v1` routes (and the credit top-up beside them) answer with, so OpenAI clients read our errors as theirs. */
export const openAiErrorView = z.object({
  error: z.object({
    message: z.string(),
    type: z.string().describe('e.g. invalid_request_error, insufficient_quota, upstream_error'),
    code: z.string().nullable(),
    param: z.string().nullable().describe('the request field at fault, when one is'),
  }),
});

export const healthView = z.object({ status: z.literal('ok') });
export const readinessView = z.object({
  status: z.enum(['ready', 'not ready']),
  checks: z.record(z.string(), z.union([z.object({ ok: z.literal(true) }), z.object({ ok: z.literal(false), error: z.literal('unavailable') })])),
});

export const serverListView = z.object({ servers: z.array(serverView) });
export const availableListView = z.object({ tier: z.string(), servers: z.array(availableServerView) });
/** The onboarding workflow a request started (or found running). */
const onboardingStarted = z.object({ ...workflowLink, runId: z.string() });
export const serverRegisteredView = z.object({ server: serverView, onboarding: onboardingStarted });
export const onboardingStartedView = z.object({ onboarding: onboardingStarted });
export const serverDetailView = serverView.extend({
  onboarding: z
    .object({ ...workflowLink, status: z.string().describe('the workflow’s status: RUNNING, COMPLETED, FAILED, TERMINATED, …') })
    .nullable()
    .describe('the server’s onboarding workflow (null: none was ever started, or its history is gone)'),
});
export const maintenanceListView = z.object({ windows: z.array(maintenanceView) });
export const auditListView = z.object({ entries: z.array(auditView), next: z.string().nullable().describe('pass as ?before= for the next page') });

export const drainStartedView = z.object(workflowLink);
export const drainSignalledView = z.object({ signalled: z.enum(['pause', 'resume', 'cancel']) });
const drainedWorkspaceView = z.object({
  workspaceId: z.string(),
  phase: z.enum(['queued', 'migrating', 'moved', 'retrying', 'failed', 'rolled-back']),
  attempts: z.number().int(),
  targetServerId: z.string().nullable(),
  bytesCopied: z.number(),
  resumedBytes: z.number().optional(),
  error: z.string().nullable(),
  migrationPhase: z.string().optional().describe('while migrating: the migration’s own phase'),
  blocked: z.string().nullable().optional().describe('while migrating: why the migration waits (no slot, no capacity, the copy’s last error)'),
  sentBytes: z.number().optional().describe('while copying: bytes sent to the target so far (live, from the copy’s heartbeat)'),
  copyAttempt: z.number().int().optional().describe('while copying: the copy activity’s attempt'),
});
export const drainProgressView = z.object({
  serverId: z.string(),
  phase: z.string(),
  paused: z.boolean(),
  deadline: z.string(),
  onDeadline: z.enum(['force', 'abort']),
  deadlinePassed: z.boolean(),
  maxParallel: z.number().int(),
  maxParallelSeen: z.number().int(),
  blocked: z.string().nullable(),
  workspaces: z.array(drainedWorkspaceView),
  workflowStatus: z.string(),
  ...workflowLink,
});

/** The workspace workflow's state (users see no engine address and the short failure reason). */
const workspaceState = z.object({
  workspaceId: z.string(),
  status: z.enum(['provisioning', 'running', 'stopped', 'failed', 'deleted']),
  phase: z.string(),
  serverId: z.string().nullable(),
  endpoint: z.object({ host: z.string(), port: z.number().int() }).nullable().describe('the engine address (admins only; null for users)'),
  error: z.string().nullable(),
  tier: z.string().optional(),
  diskLimit: z.string().optional(),
  migrating: z.string().nullable().optional(),
});
export const workspaceDetailView = workspaceView.extend({
  progress: z
    .union([workspaceState, z.object({ unavailable: z.string().describe('the workflow did not answer (no worker, or Temporal is down)') })])
    .nullable()
    .describe('the workflow’s live state; null when it has no workflow'),
});
export const workspaceListView = z.object({ workspaces: z.array(workspaceView) });
export const workspaceCreatedView = z.object({ workspace: workspaceView, workflowId: z.string() });
/** A status event on `GET /workspaces/{id}/events` (its `data`, as JSON). */
export const workspaceStatusEvent = z.object({ workspaceId: z.string(), status: z.string(), reason: z.string().nullable(), at: isoTime });
export const migrationStartedView = z.object({ workflowId: z.string() });
export const migrationResultView = z.object({
  migration: z.object({
    workspaceId: z.string(),
    outcome: z.enum(['moved', 'rolled-back']),
    sourceServerId: z.string(),
    targetServerId: z.string().nullable(),
    bytesCopied: z.number(),
    resumedBytes: z.number(),
    files: z.number().int(),
    digest: z.string().nullable(),
    status: z.enum(['running', 'stopped']),
    error: z.string().optional(),
  }),
  workflowId: z.string(),
  workspace: workspaceView,
});
export const workspaceOpenView = z.object({ url: z.string(), expiresAt: isoTime });
export const workspaceShareView = z.object({ url: z.string(), port: z.number().int(), expiresAt: isoTime });
export const proxyRoutesView = z.object({
  http: z.object({
    routers: z.record(z.string(), z.object({ rule: z.string(), service: z.string(), middlewares: z.array(z.string()) })),
    services: z.record(z.string(), z.object({ loadBalancer: z.object({ servers: z.array(z.object({ url: z.string() })) }) })),
    middlewares: z.record(z.string(), z.object({ forwardAuth: z.object({ address: z.string(), trustForwardHeader: z.boolean() }) })),
  }),
});

export const backupListView = z.object({
  repository: z.string(),
  snapshots: z.array(snapshotView),
  nextCursor: z.string().nullable(),
  runs: z.array(backupRunView),
});
export const backupStartedView = z.object(workflowLink);
export const backupFinishedView = z.object({
  ...workflowLink,
  backup: z.object({
    phase: z.string(),
    snapshots: z.array(
      z.object({ kind: z.enum(['database', 'workspace']), snapshotId: z.string(), bytes: z.number(), workspaceId: z.string().optional(), serverId: z.string().optional(), database: z.string().optional() }),
    ),
    skipped: z.array(z.object({ workspaceId: z.string(), reason: z.string() })),
    failures: z.array(z.string()),
    volumesTotal: z.number().int(),
    volumesDone: z.number().int(),
  }),
});
export const restoreFinishedView = z.object({
  ...workflowLink,
  restore: z.object({
    snapshotId: z.string(),
    mode: z.enum(['in-place', 'new-volume', 'database']),
    bytes: z.number().optional(),
    volume: z.string().optional(),
    serverId: z.string().optional(),
    status: z.string().optional(),
    targetDatabase: z.string().optional(),
    tables: z.number().int().optional(),
  }),
});

export const cutoverStartedView = z.object({ id: z.string(), temporalUi: z.string() });
export const cutoverSignalledView = z.object({ id: z.string(), signalled: z.enum(['approve', 'rollback']) });
const dnsRecordView = z.object({ id: z.string(), name: z.string(), type: z.string(), content: z.string(), proxied: z.boolean(), ttl: z.number().int() });
export const cutoverView = z.object({
  id: z.string(),
  workflowStatus: z.string(),
  startedAt: isoTime,
  closedAt: isoTime.nullable(),
  state: z
    .object({
      phase: z.string(),
      zoneId: z.string(),
      zoneName: z.string().nullable(),
      checklist: z.array(z.object({ item: z.string(), ok: z.boolean(), detail: z.string(), at: z.string() })),
      captured: z.record(z.string(), z.array(dnsRecordView)),
      switched: z.array(z.string()),
      probes: z.array(z.object({ at: z.string(), ok: z.boolean(), failures: z.array(z.string()) })),
      probesTotal: z.number().int(),
      failuresInARow: z.number().int(),
      approvedBy: z.string().nullable(),
      rollbackReason: z.string().nullable(),
      outcome: z.enum(['in-progress', 'completed', 'rolled-back', 'failed', 'cancelled']),
      error: z.string().nullable(),
      decommission: z.array(z.object({ item: z.string(), status: z.literal('to-do') })),
    })
    .nullable()
    .describe('the workflow’s state (null when it did not answer)'),
  temporalUi: z.string(),
});

export const modelListView = z.object({
  object: z.literal('list'),
  data: z.array(z.object({ id: z.string(), object: z.literal('model'), created: z.number().int(), owned_by: z.string(), openrouter_id: z.string() })),
});
/** A provider's completion, passed on as it answered (OpenAI's shape; providers add fields of their own). */
export const chatCompletionView = z.looseObject({ id: z.string(), object: z.literal('chat.completion'), created: z.number(), model: z.string(), choices: z.array(z.looseObject({})) });
/** One `data:` of a streamed completion: a provider's chunk, an error after the stream began, or the closing `[DONE]`. */
export const chatChunkView = z.looseObject({ id: z.string(), object: z.literal('chat.completion.chunk'), choices: z.array(z.looseObject({})) });
export const streamErrorView = z.object({ error: z.object({ message: z.string(), type: z.literal('upstream_error') }) });
export const jobStartedView = z.object({ id: z.string(), object: z.literal('job'), status: z.literal('running') });
export const jobView = z.object({
  id: z.string(),
  object: z.literal('job'),
  status: z.string(),
  workflowStatus: z.string().nullable(),
  result: z.unknown().nullable().describe('the completion, once done'),
  error: z.string().nullable(),
  createdAt: isoTime,
  finishedAt: isoTime.nullable(),
});
export const providerListView = z.object({ providers: z.array(z.object({ provider: z.string(), updatedAt: isoTime })) });
const usd = z.string().regex(/^-?\d+\.\d{6,12}$/).describe('US dollars, at least six places');
export const creditBalanceView = z.object({ balanceUsd: usd });
export const topUpView = z.object({ userId: z.string(), balanceUsd: usd });

/**
 * Compile time: every value of `Sent` (a workflow's own type, which a route passes on) fits
 * `View`, so the document cannot fall behind a workflow's state without tsc saying so.
 */
export type Fits<Sent extends z.output<View>, View extends z.ZodType> = Sent;
export type ViewsFitWorkflows = [
  Fits<WorkspaceState, typeof workspaceState>,
  Fits<DrainedWorkspace, typeof drainedWorkspaceView>,
  Fits<Omit<DrainState, 'workspaces'> & { workspaces: DrainedWorkspace[]; workflowStatus: string; workflowId: string; temporalUi: string }, typeof drainProgressView>,
  Fits<MigrationResult, (typeof migrationResultView)['shape']['migration']>,
  Fits<BackupState, (typeof backupFinishedView)['shape']['backup']>,
  Fits<RestoreResult, (typeof restoreFinishedView)['shape']['restore']>,
  Fits<CutoverState, (typeof cutoverView)['shape']['state']>,
];
