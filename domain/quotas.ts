/**
 * What a user may hold: a plan's default limits and entitlements, an admin's per-user
 * overrides on top, and the check a new workspace must pass. Pure: the API loads the user's
 * live workspaces and overrides under a per-user lock and asks here.
 */
import { TIER_NAMES, TIERS, type TierName } from './tiers';

export interface Limits {
  /** Workspaces alive at once (every status but deleted and failed: a stopped one keeps its volume). */
  maxWorkspaces: number;
  /** Totals over those workspaces, by their tiers. */
  maxCpu: number;
  maxMemoryMb: number;
  maxDiskGb: number;
  /** GPUs asked for (constraints.gpu.count) over those workspaces; 0: no GPU workspace. */
  maxGpus: number;
  /** Tiers the user may pick. */
  tiers: TierName[];
  /** Whether the user may pin a workspace to a server (`server`); otherwise placement chooses. */
  serverChoice: boolean;
}

export const PLAN_NAMES = ['free', 'pro', 'team'] as const;
export type PlanName = (typeof PLAN_NAMES)[number];

export const PLANS: Record<PlanName, Limits> = {
  free: { maxWorkspaces: 2, maxCpu: 2, maxMemoryMb: 2048, maxDiskGb: 10, maxGpus: 0, tiers: ['free'], serverChoice: false },
  pro: { maxWorkspaces: 5, maxCpu: 8, maxMemoryMb: 16384, maxDiskGb: 100, maxGpus: 0, tiers: ['free', 'pro'], serverChoice: false },
  team: { maxWorkspaces: 20, maxCpu: 32, maxMemoryMb: 65536, maxDiskGb: 500, maxGpus: 1, tiers: [...TIER_NAMES], serverChoice: false },
};

/** An admin's overrides for one user: each field set replaces the plan's; `plan` replaces the default plan. */
export type Overrides = Partial<Limits> & { plan?: PlanName };

export function effectiveLimits(defaultPlan: PlanName, o: Overrides | null): { plan: PlanName; limits: Limits } {
  const plan = o?.plan ?? defaultPlan;
  const limits = { ...PLANS[plan] };
  for (const k of Object.keys(limits) as (keyof Limits)[]) {
    if (o?.[k] !== undefined && o[k] !== null) (limits as Record<string, unknown>)[k] = o[k];
  }
  return { plan, limits };
}

export interface Usage {
  workspaces: number;
  cpu: number;
  memoryMb: number;
  diskGb: number;
  gpus: number;
}

/** What the user's live workspaces hold, from their tiers and GPU constraints. */
export function usageOf(live: readonly { tier: string; constraints: unknown }[]): Usage {
  const u: Usage = { workspaces: 0, cpu: 0, memoryMb: 0, diskGb: 0, gpus: 0 };
  for (const w of live) {
    const t = TIERS[w.tier as TierName];
    u.workspaces += 1;
    u.cpu += t?.cpu ?? 0;
    u.memoryMb += t?.memoryMb ?? 0;
    u.diskGb += t?.diskGb ?? 0;
    u.gpus += (w.constraints as { gpu?: { count?: number } } | null)?.gpu?.count ?? 0;
  }
  return u;
}

export type Refusal =
  | { kind: 'entitlement'; field: 'tier' | 'constraints.gpu' | 'server'; message: string }
  | { kind: 'quota'; limit: keyof Limits; max: number; used: number; asked: number; message: string };

/** Why `limits` refuse a new workspace of `tier` with `gpus` GPUs (pinned or not), given `usage`; null when they allow it. */
export function refusal(limits: Limits, plan: string, usage: Usage, ask: { tier: TierName; gpus: number; pinned: boolean }): Refusal | null {
  if (!limits.tiers.includes(ask.tier)) {
    return { kind: 'entitlement', field: 'tier', message: `tier: the ${plan} plan does not include the ${ask.tier} tier (allowed: ${limits.tiers.join(', ') || 'none'})` };
  }
  if (ask.gpus > 0 && limits.maxGpus === 0) {
    return { kind: 'entitlement', field: 'constraints.gpu', message: `constraints.gpu: the ${plan} plan does not include GPU workspaces` };
  }
  if (ask.pinned && !limits.serverChoice) {
    return { kind: 'entitlement', field: 'server', message: "server: only admins choose a workspace's server; use 'auto'" };
  }
  const t = TIERS[ask.tier];
  const checks: [keyof Limits, number, number, string][] = [
    ['maxWorkspaces', usage.workspaces, 1, 'workspaces'],
    ['maxCpu', usage.cpu, t.cpu, 'CPUs'],
    ['maxMemoryMb', usage.memoryMb, t.memoryMb, 'MB of memory'],
    ['maxDiskGb', usage.diskGb, t.diskGb, 'GB of disk'],
    ['maxGpus', usage.gpus, ask.gpus, 'GPUs'],
  ];
  for (const [limit, used, asked, unit] of checks) {
    const max = limits[limit] as number;
    if (asked > 0 && used + asked > max) {
      return { kind: 'quota', limit, max, used, asked, message: `${limit}: ${used} ${unit} in use + ${asked} asked exceeds the limit of ${max}` };
    }
  }
  return null;
}
