/**
 * Workspace placement (seed Task 3.2): which server hosts a new workspace.
 * SPREAD (default) picks the least loaded, BEST_FIT packs tightly, AFFINITY prefers the
 * server of the user's other workspaces and falls back to SPREAD. Hard constraints exclude
 * servers, and a refusal says which constraint excluded which server.
 */
import { fitsOn, type Capacity } from './servers';

export const STRATEGIES = ['SPREAD', 'BEST_FIT', 'AFFINITY'] as const;
export type Strategy = (typeof STRATEGIES)[number];

export interface Candidate {
  id: string;
  name: string;
  status: string;
  cordoned: boolean;
  inMaintenance: boolean;
  architecture: string | null;
  region: string | null;
  labels: Record<string, unknown>;
  hasGpu: boolean;
  gpuType: string | null;
  gpuCount: number;
  total: Capacity;
  reserved: Capacity;
}

export interface PlacementRequest {
  need: Capacity;
  strategy: Strategy;
  /** A server the user chose from /servers/available; otherwise `auto`. */
  serverId?: string;
  architecture?: string;
  region?: string;
  labels?: Record<string, string>;
  gpu?: { type?: string; count: number };
  /** Servers that must not be chosen, e.g. the one a migration moves the workspace away from. */
  avoid?: readonly string[];
  /** Servers hosting the user's other workspaces, most workspaces first (AFFINITY). */
  affinity?: string[];
  overcommit: number;
}

/**
 * Why a placement was refused. `impossible`: no server the fleet has could take the request even
 * empty and in service (a label, GPU, architecture or region none has, a tier larger than every
 * server, a pinned server that is not registered or retired): waiting does not help. `not_now`:
 * some server could, once it has room, is uncordoned, reachable, onboarded or out of maintenance.
 */
export type RefusalKind = 'impossible' | 'not_now';

/** A request field no server meets, named as in POST /workspaces; the message names no server. */
export interface UnmetField {
  field: string;
  message: string;
}

/**
 * The stored reasons of a refusal, by kind: the first words say which kind it is (`refusalKind`),
 * so a reason stored by the workflow is answered as the API's own check would be.
 */
export const REFUSAL_REASON = {
  notNow: 'no capacity: no server can take this workspace',
  impossible: 'unsatisfiable: no server in the fleet offers what this workspace asks for',
  unknownServer: 'unsatisfiable: the chosen server does not exist',
} as const;

/**
 * A refusal's `reason` names no server (its owner may read it); `detail` says which
 * constraint excluded which server, for operators (`withDetail` joins the two).
 */
export type Placement =
  | { ok: true; ranked: Candidate[] }
  | { ok: false; kind: RefusalKind; reason: string; detail: string; excluded: Record<string, string[]>; fields: UnmetField[] };

/** The operator's form of a refusal: the reason with the fleet's detail. */
export const withDetail = (p: { reason: string; detail: string }): string => (p.detail ? `${p.reason} (${p.detail})` : p.reason);

/** The kind of a stored placement refusal (a workspace's status reason, a migration's error); null for any other reason. */
export function refusalKind(reason: string | null | undefined): RefusalKind | null {
  if (!reason) return null;
  if (/^unsatisfiable\b/.test(reason)) return 'impossible';
  if (/^no capacity\b/.test(reason)) return 'not_now';
  return null;
}

/** Statuses a server does not leave without an operator registering it anew: it cannot be waited for. */
const RETIRED: readonly string[] = ['drained'];

/** One constraint of the request: which field asks it, whether a server meets it, and why not. */
interface Check {
  field: string;
  /** What the field asks for, in words that name no server. */
  asks: string;
  ok: (s: Candidate) => boolean;
  why: (s: Candidate) => string;
}

/**
 * The request's constraints on what a server is (architecture, region, labels, GPUs), built once
 * per request. Unlike status, cordon, maintenance and free capacity, waiting changes none of them.
 */
function constraintChecks(r: PlacementRequest): Check[] {
  const checks: Check[] = [];
  const { architecture, region, gpu } = r;
  if (architecture) checks.push({ field: 'constraints.architecture', asks: 'this architecture', ok: (s) => s.architecture === architecture, why: (s) => `architecture ${s.architecture} ≠ ${architecture}` });
  if (region) checks.push({ field: 'constraints.region', asks: 'this region', ok: (s) => s.region === region, why: (s) => `region ${s.region ?? 'none'} ≠ ${region}` });
  for (const [k, v] of Object.entries(r.labels ?? {})) {
    checks.push({ field: `constraints.labels.${k}`, asks: 'this label', ok: (s) => String(s.labels[k]) === v, why: () => `label ${k}=${v} missing` });
  }
  if (gpu && gpu.count > 0) {
    const enough = (s: Candidate) => s.hasGpu && s.gpuCount >= gpu.count;
    checks.push({
      field: 'constraints.gpu',
      asks: gpu.type ? 'this many GPUs of this type' : 'this many GPUs',
      ok: (s) => enough(s) && (!gpu.type || s.gpuType === gpu.type),
      why: (s) => (enough(s) ? `GPU type ${s.gpuType} ≠ ${gpu.type}` : `needs ${gpu.count} GPU(s), has ${s.hasGpu ? s.gpuCount : 0}`),
    });
  }
  return checks;
}

const NOTHING: Capacity = { cpu: 0, memoryMb: 0, diskGb: 0 };
/** Whether the server, empty, could hold the tier. A server not yet measured (onboarding has not read its capacity) might. */
const bigEnough = (s: Candidate, r: PlacementRequest) =>
  (s.total.cpu === 0 && s.total.memoryMb === 0 && s.total.diskGb === 0) || fitsOn(r.need, s.total, NOTHING, r.overcommit);

/** Why a server cannot take the request; empty when it can. */
export function exclusions(s: Candidate, r: PlacementRequest, checks: readonly Check[] = constraintChecks(r)): string[] {
  const why: string[] = [];
  if (r.avoid?.includes(s.id)) why.push('the workspace is moving away from it');
  if (s.status !== 'active') why.push(`status ${s.status}`);
  if (s.cordoned) why.push('cordoned');
  if (s.inMaintenance) why.push('in maintenance');
  for (const c of checks) if (!c.ok(s)) why.push(c.why(s));
  if (!bigEnough(s, r)) why.push('smaller than the tier');
  else if (!fitsOn(r.need, s.total, s.reserved, r.overcommit)) why.push('no capacity for the tier');
  return why;
}

/**
 * The fields no server in `live` (registered, not retired, not avoided) could ever meet: each
 * constraint no server meets on its own; else `constraints` when none meets them all together;
 * else `tier` when every server that meets them is smaller than the tier. Empty: some server could.
 */
function unmetFields(live: readonly Candidate[], r: PlacementRequest, checks: readonly Check[], pinned: boolean): UnmetField[] {
  const none = pinned ? 'the chosen server does not offer' : 'no server offers';
  const alone = checks.filter((c) => !live.some(c.ok)).map((c) => ({ field: c.field, message: `${none} ${c.asks}` }));
  if (alone.length > 0) return alone;
  const matching = live.filter((s) => checks.every((c) => c.ok(s)));
  if (matching.length === 0) return [{ field: 'constraints', message: 'no server offers all of these together' }];
  if (!matching.some((s) => bigEnough(s, r))) {
    return [{ field: 'tier', message: pinned ? 'the chosen server is smaller than this tier' : `no server${checks.length ? ' that meets the constraints' : ''} is large enough for this tier` }];
  }
  return [];
}

/**
 * Why nothing in `pool` can take the request, and whether waiting could help. With no live server
 * at all (an empty or retired fleet) nothing is judged impossible: servers are still to come.
 */
function refuse(pool: readonly Candidate[], r: PlacementRequest, checks: readonly Check[]): Extract<Placement, { ok: false }> {
  const pinned = Boolean(r.serverId);
  if (pinned && pool.length === 0) {
    return { ok: false, kind: 'impossible', reason: REFUSAL_REASON.unknownServer, detail: `server ${r.serverId} is not registered`, excluded: {}, fields: [{ field: 'server', message: 'no such server' }] };
  }
  const excluded: Record<string, string[]> = {};
  for (const s of pool) excluded[s.name] = exclusions(s, r, checks);
  const detail = Object.entries(excluded)
    .map(([name, why]) => `${name}: ${why.join(', ')}`)
    .join('; ');
  const live = pool.filter((s) => !RETIRED.includes(s.status) && !r.avoid?.includes(s.id));
  let fields: UnmetField[] = [];
  if (pinned && live.length === 0) fields = [{ field: 'server', message: r.avoid?.includes(r.serverId!) ? 'the workspace is on the chosen server already' : `the chosen server is ${pool[0].status}` }];
  else if (live.length > 0) fields = unmetFields(live, r, checks, pinned);
  const kind = fields.length > 0 ? 'impossible' : 'not_now';
  return { ok: false, kind, reason: kind === 'impossible' ? REFUSAL_REASON.impossible : REFUSAL_REASON.notNow, detail: detail || 'no servers', excluded, fields };
}

/** Load as the share of the most used dimension after placing `need`. */
function loadAfter(s: Candidate, need: Capacity, overcommit: number): number {
  const cpu = s.total.cpu > 0 ? (s.reserved.cpu + need.cpu) / (s.total.cpu * overcommit) : 1;
  const memory = s.total.memoryMb > 0 ? (s.reserved.memoryMb + need.memoryMb) / (s.total.memoryMb * overcommit) : 1;
  const disk = s.total.diskGb > 0 ? (s.reserved.diskGb + need.diskGb) / (s.total.diskGb * overcommit) : 1;
  return Math.max(cpu, memory, disk);
}

/**
 * Whether a server passes every hard constraint: `exclusions(s, r).length === 0` without
 * building the reasons, since a placement scans every server of the fleet.
 */
function eligible(s: Candidate, r: PlacementRequest, checks: readonly Check[]): boolean {
  if (s.status !== 'active' || s.cordoned || s.inMaintenance || r.avoid?.includes(s.id)) return false;
  for (const c of checks) if (!c.ok(s)) return false;
  return fitsOn(r.need, s.total, s.reserved, r.overcommit);
}

const byName = (a: Candidate, b: Candidate) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Ranks the eligible servers for a request, best first; or explains why none is, and whether waiting could help. */
export function place(servers: readonly Candidate[], r: PlacementRequest): Placement {
  const checks = constraintChecks(r);
  const pool = r.serverId ? servers.filter((s) => s.id === r.serverId) : servers;
  // Each eligible server with its sort key, computed once.
  const scored: { s: Candidate; load: number; affinity: number }[] = [];
  const order = new Map((r.strategy === 'AFFINITY' ? (r.affinity ?? []) : []).map((id, i) => [id, i]));
  for (const s of pool) {
    if (eligible(s, r, checks)) scored.push({ s, load: loadAfter(s, r.need, r.overcommit), affinity: order.get(s.id) ?? Infinity });
  }
  if (scored.length === 0) return refuse(pool, r, checks);
  type Scored = (typeof scored)[number];
  const spread = (a: Scored, b: Scored) => a.load - b.load || byName(a.s, b.s);
  const compare: Record<Strategy, (a: Scored, b: Scored) => number> = {
    SPREAD: spread,
    // Pack tightly: the fullest server that still fits first.
    BEST_FIT: (a, b) => b.load - a.load || byName(a.s, b.s),
    // The server of the user's other workspaces first (most of them first), else SPREAD.
    AFFINITY: (a, b) => a.affinity - b.affinity || spread(a, b),
  };
  scored.sort(compare[r.strategy] ?? spread);
  return { ok: true, ranked: scored.map((x) => x.s) };
}
