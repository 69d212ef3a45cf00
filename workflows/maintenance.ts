import { proxyActivities, proxyLocalActivities, sleep } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { dbActivity, dbLocalActivity } from './activity-options';

const remote = proxyActivities<Activities>(dbActivity);
const local = proxyLocalActivities<Activities>(dbLocalActivity);

/**
 * Waits, on durable timers visible in the Temporal UI, until the server is outside every
 * maintenance window; re-reads the windows after each wait, since operators may extend them.
 * `onWait` is told when each wait starts and ends (until = null). Workspaces read the windows
 * with a local activity (their hot path); onboarding with a regular one.
 */
export async function waitOutMaintenance(serverId: string, onWait?: (until: string | null) => void, opts: { local?: boolean } = {}): Promise<void> {
  const { maintenanceEndsAt } = opts.local ? local : remote;
  for (;;) {
    const endsAt = await maintenanceEndsAt(serverId);
    if (!endsAt) {
      onWait?.(null);
      return;
    }
    onWait?.(endsAt);
    await sleep(Math.max(1_000, Date.parse(endsAt) - Date.now()));
  }
}
