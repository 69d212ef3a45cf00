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
 * A refusal's `reason` names no server (its owner may read it); `detail` says which
 * constraint excluded which server, for operators (`withDetail` joins the two).
 */
export type Placement =
  | { ok: true; ranked: Candidate[] }
  | { ok: false; reason: string; detail: string; excluded: Record<string, string[]> };

/** The operator's form of a refusal: the reason with the fleet's detail. */
export const withDetail = (p: { reason: string; detail: string }): string => (p.detail ? `${p.reason} (${p.detail})` : p.reason);

/** Why a server cannot take the request; empty when it can. */
export function exclusions(s: Candidate, r: PlacementRequest): string[] {
  const why: string[] = [];
  if (r.avoid?.includes(s.id)) why.push('the workspace is moving away from it');
  if (s.status !== 'active') why.push(`status ${s.status}`);
  if (s.cordoned) why.push('cordoned');
  if (s.inMaintenance) why.push('in maintenance');
  if (r.architecture && s.architecture !== r.architecture) why.push(`architecture ${s.architecture} ≠ ${r.architecture}`);
  if (r.region && s.region !== r.region) why.push(`region ${s.region ?? 'none'} ≠ ${r.region}`);
  for (const [k, v] of Object.entries(r.labels ?? {})) {
    if (String(s.labels[k]) !== v) why.push(`label ${k}=${v} missing`);
  }
  if (r.gpu && r.gpu.count > 0) {
    if (!s.hasGpu || s.gpuCount < r.gpu.count) why.push(`needs ${r.gpu.count} GPU(s), has ${s.hasGpu ? s.gpuCount : 0}`);
    else if (r.gpu.type && s.gpuType !== r.gpu.type) why.push(`GPU type ${s.gpuType} ≠ ${r.gpu.type}`);
  }
  if (!fitsOn(r.need, s.total, s.reserved, r.overcommit)) why.push('no capacity for the tier');
  return why;
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
function eligible(s: Candidate, r: PlacementRequest, labels: readonly [string, string][]): boolean {
  if (s.status !== 'active' || s.cordoned || s.inMaintenance || r.avoid?.includes(s.id)) return false;
  if (r.architecture && s.architecture !== r.architecture) return false;
  if (r.region && s.region !== r.region) return false;
  for (const [k, v] of labels) if (String(s.labels[k]) !== v) return false;
  if (r.gpu && r.gpu.count > 0 && (!s.hasGpu || s.gpuCount < r.gpu.count || (r.gpu.type && s.gpuType !== r.gpu.type))) return false;
  return fitsOn(r.need, s.total, s.reserved, r.overcommit);
}

const byName = (a: Candidate, b: Candidate) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Ranks the eligible servers for a request, best first; or explains why none is. */
export function place(servers: readonly Candidate[], r: PlacementRequest): Placement {
  const labels = Object.entries(r.labels ?? {});
  const pool = r.serverId ? servers.filter((s) => s.id === r.serverId) : servers;
  // Each eligible server with its sort key, computed once.
  const scored: { s: Candidate; load: number; affinity: number }[] = [];
  const order = new Map((r.strategy === 'AFFINITY' ? (r.affinity ?? []) : []).map((id, i) => [id, i]));
  for (const s of pool) {
    if (eligible(s, r, labels)) scored.push({ s, load: loadAfter(s, r.need, r.overcommit), affinity: order.get(s.id) ?? Infinity });
  }
  if (scored.length === 0) {
    if (r.serverId && pool.length === 0) return { ok: false, reason: 'no capacity: the chosen server is not available', detail: `server ${r.serverId} is not registered`, excluded: {} };
    const excluded: Record<string, string[]> = {};
    for (const s of pool) excluded[s.name] = exclusions(s, r);
    const detail = Object.entries(excluded)
      .map(([name, why]) => `${name}: ${why.join(', ')}`)
      .join('; ');
    return { ok: false, reason: 'no capacity: no server can take this workspace', detail: detail || 'no servers', excluded };
  }
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
