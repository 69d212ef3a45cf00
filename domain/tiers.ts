/** Workspace tiers: the resources each workspace of a tier is given, defined in one place. */
export interface Tier {
  name: string;
  cpu: number;
  memoryMb: number;
  diskGb: number;
  /** Idle minutes before auto-stop; null = never (auto-stop is off unless configured). */
  idleTimeoutMinutes: number | null;
}

export const TIERS = {
  free: { name: 'free', cpu: 1, memoryMb: 1024, diskGb: 5, idleTimeoutMinutes: null },
  pro: { name: 'pro', cpu: 2, memoryMb: 4096, diskGb: 20, idleTimeoutMinutes: null },
  power: { name: 'power', cpu: 4, memoryMb: 8192, diskGb: 50, idleTimeoutMinutes: null },
} as const satisfies Record<string, Tier>;

export type TierName = keyof typeof TIERS;
export const TIER_NAMES = Object.keys(TIERS) as TierName[];

export function tier(name: TierName): Tier {
  return TIERS[name];
}
