/**
 * A server's schedulable capacity as its operator declares it, which may differ from what the
 * engine reports: a share held back for the host, or the local engines on a 2-core laptop that
 * must still fit every tier. The declaration lives on the server itself, as Docker daemon labels
 * (`"labels"` in daemon.json, read from the engine's Info.Labels at every onboarding), so it
 * survives onboarding again and travels with the machine's own configuration.
 */
import type { Capacity } from './servers';

export const CAPACITY_LABELS = {
  cpu: 'podex.capacity.cpu',
  memoryMb: 'podex.capacity.memory-mb',
  diskGb: 'podex.capacity.disk-gb',
} as const;

/** The largest figure each label may hold: the registry's columns (total_cpu is bounded as the API bounds it). */
const MAX: Capacity = { cpu: 4096, memoryMb: 2_147_483_647, diskGb: 2_147_483_647 };

export type DeclaredCapacity = Partial<Capacity>;

export class BadCapacityLabelError extends Error {
  override name = 'BadCapacityLabelError';
}

/**
 * The capacity declared by an engine's labels (`key=value` strings, as Info.Labels gives them);
 * a resource without its label is left out. A label whose value is not a whole number from 1 up
 * is an error naming it: a typo must not silently fall back to the hardware's figure.
 */
export function declaredCapacity(labels: readonly string[]): DeclaredCapacity {
  const declared: DeclaredCapacity = {};
  for (const label of labels) {
    const eq = label.indexOf('=');
    const key = (eq < 0 ? label : label.slice(0, eq)).trim();
    const resource = (Object.keys(CAPACITY_LABELS) as (keyof Capacity)[]).find((r) => CAPACITY_LABELS[r] === key);
    if (!resource) continue;
    const value = eq < 0 ? '' : label.slice(eq + 1).trim();
    const n = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!(n >= 1 && n <= MAX[resource])) {
      throw new BadCapacityLabelError(`daemon label ${key}=${value}: must be a whole number from 1 to ${MAX[resource]}`);
    }
    declared[resource] = n;
  }
  return declared;
}

/** What placement schedules against: each declared figure in place of the engine's own. */
export function schedulableCapacity(real: Capacity, declared: DeclaredCapacity): Capacity {
  return { cpu: declared.cpu ?? real.cpu, memoryMb: declared.memoryMb ?? real.memoryMb, diskGb: declared.diskGb ?? real.diskGb };
}
