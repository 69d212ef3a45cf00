/** Request and response shapes of the API: validation and the OpenAPI document come from these. */
import { isIP } from 'node:net';
import { z } from 'zod';
import { PLAN_NAMES } from '../domain/quotas';
import { TIER_NAMES } from '../domain/tiers';
import { MAX_PREVIEW_PORTS, previewPortsProblem } from '../domain/workspace-routes';

const hostname = z
  .string()
  .min(1)
  .max(255)
  .regex(/^(?=.{1,255}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/, 'must be a DNS hostname');
const labels = z.record(z.string().regex(/^[a-zA-Z0-9_./-]{1,63}$/, 'label keys: letters, digits, _ . / -'), z.string().max(255));
const port = z.number().int().min(1).max(65535);

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
    totalCpu: z.number().int().min(0).max(4096),
    totalMemoryMb: z.number().int().min(0),
    totalDiskGb: z.number().int().min(0),
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
    limit: z.coerce.number().int().min(1).max(500).default(100),
    offset: z.coerce.number().int().min(0).default(0),
  })
  .strict();

export const availableQuery = z.object({ tier: z.enum(TIER_NAMES as [string, ...string[]]).default('free') }).strict();

export const drainBody = z
  .object({
    deadline: z.iso.datetime({ offset: true }).describe('when onDeadline decides about what is left'),
    maxParallel: z.number().int().min(1).max(64).optional().describe('migrations in flight across the whole fleet'),
    onDeadline: z.enum(['force', 'abort']).default('force'),
    strategy: z.enum(['SPREAD', 'BEST_FIT', 'AFFINITY']).optional(),
    paused: z.boolean().default(false).describe('cordon now, move nothing until resumed'),
  })
  .strict()
  .refine((b) => Date.parse(b.deadline) > Date.now(), { message: 'must be in the future', path: ['deadline'] });
export const drainActionParams = z.object({ id: z.uuid({ message: 'must be a UUID' }), action: z.enum(['pause', 'resume', 'cancel']) });

export const maintenanceBody = z
  .object({
    startsAt: z.iso.datetime({ offset: true }).optional().describe('default: now'),
    endsAt: z.iso.datetime({ offset: true }),
    reason: z.string().max(500).optional(),
  })
  .strict()
  .refine((b) => Date.parse(b.endsAt) > (b.startsAt ? Date.parse(b.startsAt) : Date.now()), {
    message: 'must be after startsAt (and in the future)',
    path: ['endsAt'],
  });

export const auditQuery = z
  .object({
    targetType: z.string().max(32).optional(),
    targetId: z.string().max(64).optional(),
    limit: z.coerce.number().int().min(1).max(500).default(100),
    before: z.coerce.number().int().positive().optional().describe('entries with a smaller id (paging)'),
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
      .array(z.number().int().min(1).max(65535))
      .max(MAX_PREVIEW_PORTS)
      .default([])
      .superRefine((ports, ctx) => {
        const problem = previewPortsProblem(ports);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .describe(`container ports opened as {port}-ws-{id} (at most ${MAX_PREVIEW_PORTS}; published when the container is made, so only at creation)`),
    constraints: z
      .object({
        architecture: z.enum(['amd64', 'arm64']).optional(),
        region: z.string().min(1).max(50).optional(),
        labels: z.record(z.string(), z.string()).optional(),
        gpu: z.object({ type: z.string().max(50).optional(), count: z.number().int().min(1).max(16) }).strict().optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export const openWorkspaceQuery = z
  .object({ port: z.coerce.number().int().min(1).max(65535).optional().describe('a preview port (default: the IDE)') })
  .strict();
export const shareWorkspaceBody = z
  .object({
    port: z.number().int().min(1).max(65535).describe('the preview port the link opens'),
    expiresInMinutes: z.number().int().min(1).max(7 * 24 * 60).default(60),
  })
  .strict();

export const createWorkspaceQuery = z.object({ wait: z.enum(['true', 'false']).default('false') }).strict();
export const listWorkspacesQuery = z
  .object({
    status: z.string().max(20).optional(),
    owner: z.string().max(255).optional().describe('admins only'),
    limit: z.coerce.number().int().min(1).max(500).default(100),
    offset: z.coerce.number().int().min(0).default(0),
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
    parallel: z.number().int().min(1).max(32).optional().describe('workspace volumes streamed at once'),
  })
  .strict();
export const waitQuery = z.object({ wait: z.enum(['true', 'false']).default('false') }).strict();
export const listBackupsQuery = z
  .object({
    kind: z.enum(['database', 'workspace']).optional(),
    workspaceId: z.uuid({ message: 'must be a workspace id' }).optional(),
    runs: z.coerce.number().int().min(0).max(100).default(20).describe('how many recent runs to include'),
    limit: z.coerce.number().int().min(1).max(500).default(100).describe('snapshots per page, newest first'),
    before: z.string().max(200).optional().describe('the nextCursor of the previous page'),
  })
  .strict();
export const restoreBody = z
  .object({
    snapshotId,
    workspaceId: z.uuid({ message: 'must be a workspace id' }).optional().describe('restore this workspace volume (its own snapshot)'),
    mode: z.enum(['in-place', 'new-volume']).default('in-place').describe('in-place stops the workspace, replaces its data and starts it again'),
    targetDatabase: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case database name (letters, digits, _)')
      .optional()
      .describe('restore a database snapshot into this new database'),
  })
  .strict()
  .superRefine((b, ctx) => {
    if (!b.workspaceId === !b.targetDatabase) ctx.addIssue({ code: 'custom', path: ['workspaceId'], message: 'give exactly one of workspaceId and targetDatabase' });
  });
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
export const cutoverRecord = z
  .object({
    name: recordName,
    type: z.enum(['A', 'AAAA', 'CNAME'], { message: 'must be A, AAAA or CNAME' }),
    content: z.string().min(1).max(255),
    proxied: z.boolean().default(true),
    ttl: z.number().int().refine((t) => t === 1 || (t >= 30 && t <= 86400), 'must be 1 (automatic) or 30–86400 seconds').default(1),
  })
  .strict()
  .superRefine((r, ctx) => {
    const bad =
      (r.type === 'A' && isIP(r.content) !== 4 && 'must be an IPv4 address for an A record') ||
      (r.type === 'AAAA' && isIP(r.content) !== 6 && 'must be an IPv6 address for an AAAA record') ||
      (r.type === 'CNAME' && r.content !== '@' && !HOST_NAME.test(r.content) && 'must be a host name for a CNAME record');
    if (bad) ctx.addIssue({ code: 'custom', path: ['content'], message: bad });
  });
export const cutoverBody = z
  .object({
    zoneId: z.string().regex(/^[0-9a-f]{32}$/, 'must be a Cloudflare zone id (32 hex characters)'),
    targetIp: ipAddress.describe('the new platform server’s public address'),
    records: z.array(cutoverRecord).min(1).max(100).optional().describe('default: the Phase 8 table (@, www, app, api, *, coolify) for targetIp'),
    healthUrls: z.array(z.url({ message: 'must be a URL' })).min(1).max(20).describe('the new platform’s health URLs'),
    preflight: z
      .object({ backupMaxAgeHours: z.number().positive().max(720).default(24), serverLabels: z.record(z.string(), z.string()).optional() })
      .strict()
      .optional(),
    autoApprove: z.boolean().default(false),
    approvalTimeoutHours: z.number().positive().max(720).default(72),
    lowerTtlTo: z.number().int().min(30).max(3600).default(60),
    maxTtlWaitSeconds: z.number().int().min(0).max(86400).default(3600),
    watch: z
      .object({ hours: z.number().positive().max(720).default(48), probeEveryMinutes: z.number().positive().max(1440).default(5), failuresToRollback: z.number().int().min(1).max(100).default(3) })
      .strict()
      .optional(),
    rollbackWindowDays: z.number().positive().max(90).default(14),
    restoreDatabaseTo: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case database name').optional(),
    decommission: z.array(z.string().min(1).max(500)).max(100).optional(),
  })
  .strict();
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
      .record(z.string(), z.string().max(32_768).refine(noNul, 'must not contain NUL'))
      .superRefine((e, ctx) => {
        const names = Object.keys(e);
        if (names.length > 64) ctx.addIssue({ code: 'custom', message: 'at most 64 variables' });
        for (const n of names.filter((k) => !ENV_NAME.test(k))) ctx.addIssue({ code: 'custom', path: [n], message: 'a name is letters, digits and _, not starting with a digit' });
      })
      .optional()
      .describe('added to the container’s environment (never logged or audited, names only)'),
    workdir: z.string().max(4096).regex(/^\//, 'must be an absolute path').refine(noNul, 'must not contain NUL').optional(),
    timeoutSeconds: z.number().int().min(1).max(3600).default(60).describe('then every process of the command is killed'),
    maxOutputBytes: z.number().int().min(0).max(16 * 1024 * 1024).default(1024 * 1024).describe('stdout and stderr together; the rest is dropped (truncated: true)'),
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
    cols: z.coerce.number().int().min(1).max(1000).optional(),
    rows: z.coerce.number().int().min(1).max(1000).optional(),
  })
  .strict();

const limitValues = {
  maxWorkspaces: z.number().int().min(0).max(10_000),
  maxCpu: z.number().min(0).max(100_000),
  maxMemoryMb: z.number().int().min(0),
  maxDiskGb: z.number().int().min(0),
  maxGpus: z.number().int().min(0).max(1024),
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
