/**
 * Workspace placement (seed Task 3.2): which server hosts a new workspace.
 * SPREAD (default) picks the least loaded, BEST_FIT packs tightly, AFFINITY prefers the
 * server of the user's other workspaces and falls back to SPREAD. Hard constraints exclude
 * servers, and a refusal says which constraint excluded which server.
 */
import { fits, freeCapacity, type Capacity } from './servers';

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
  /** Servers hosting the user's other workspaces, most workspaces first (AFFINITY). */
  affinity?: string[];
  overcommit: number;
}

export type Placement =
  | { ok: true; ranked: Candidate[] }
  | { ok: false; reason: string; excluded: Record<string, string[]> };

/** Why a server cannot take the request; empty when it can. */
export function exclusions(s: Candidate, r: PlacementRequest): string[] {
  const why: string[] = [];
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
  if (!fits(r.need, freeCapacity(s.total, s.reserved, r.overcommit))) why.push('no capacity for the tier');
  return why;
}

/** Load as the share of the most used dimension after placing `need`. */
function loadAfter(s: Candidate, need: Capacity, overcommit: number): number {
  const share = (used: number, total: number) => (total > 0 ? used / (total * overcommit) : 1);
  return Math.max(
    share(s.reserved.cpu + need.cpu, s.total.cpu),
    share(s.reserved.memoryMb + need.memoryMb, s.total.memoryMb),
    share(s.reserved.diskGb + need.diskGb, s.total.diskGb),
  );
}

/** Ranks the eligible servers for a request, best first; or explains why none is. */
export function place(servers: readonly Candidate[], r: PlacementRequest): Placement {
  const excluded: Record<string, string[]> = {};
  const eligible: Candidate[] = [];
  for (const s of servers) {
    if (r.serverId && s.id !== r.serverId) continue;
    const why = exclusions(s, r);
    if (why.length) excluded[s.name] = why;
    else eligible.push(s);
  }
  if (eligible.length === 0) {
    if (r.serverId && !servers.some((s) => s.id === r.serverId)) {
      return { ok: false, reason: `server ${r.serverId} is not available`, excluded };
    }
    const detail = Object.entries(excluded)
      .map(([name, why]) => `${name}: ${why.join(', ')}`)
      .join('; ');
    return { ok: false, reason: `no capacity: no server can take this workspace (${detail || 'no servers'})`, excluded };
  }
  const byLoad = (a: Candidate, b: Candidate) => loadAfter(a, r.need, r.overcommit) - loadAfter(b, r.need, r.overcommit) || a.name.localeCompare(b.name);
  let ranked: Candidate[];
  switch (r.strategy) {
    case 'BEST_FIT':
      ranked = [...eligible].sort((a, b) => -byLoad(a, b) || a.name.localeCompare(b.name));
      break;
    case 'AFFINITY': {
      const order = new Map((r.affinity ?? []).map((id, i) => [id, i]));
      ranked = [...eligible].sort((a, b) => (order.get(a.id) ?? Infinity) - (order.get(b.id) ?? Infinity) || byLoad(a, b));
      break;
    }
    default:
      ranked = [...eligible].sort(byLoad);
  }
  return { ok: true, ranked };
}
