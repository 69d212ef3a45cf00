import { proxyActivities, sleep } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { dbActivity } from './activity-options';

const { maintenanceEndsAt } = proxyActivities<Activities>(dbActivity);

/**
 * Waits, on durable timers visible in the Temporal UI, until the server is outside every
 * maintenance window; re-reads the windows after each wait, since operators may extend them.
 * `onWait` is told when each wait starts and ends (until = null).
 */
export async function waitOutMaintenance(serverId: string, onWait?: (until: string | null) => void): Promise<void> {
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
