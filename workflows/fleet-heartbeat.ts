import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { dbActivity, heartbeatActivity } from './activity-options';

const { listMonitoredServers } = proxyActivities<Activities>(dbActivity);
const { heartbeatServer } = proxyActivities<Activities>(heartbeatActivity);

export interface FleetHeartbeatInput {
  /** Consecutive misses before a server is `unreachable`. */
  threshold: number;
  /** How long one server may take to answer. */
  timeoutMs: number;
  /** TTL of the Redis copy of each server's usage. */
  ttlSeconds: number;
  /** Only these servers (default: every monitored server). */
  serverIds?: string[];
}

/** One round of the fleet heartbeat, run by a Temporal Schedule every N seconds: every server in parallel. */
export async function fleetHeartbeatWorkflow(input: FleetHeartbeatInput) {
  const ids = await listMonitoredServers(input.serverIds);
  const results = await Promise.all(ids.map((id) => heartbeatServer(id, input.threshold, input.timeoutMs, input.ttlSeconds)));
  return {
    checked: results.length,
    unreachable: results.filter((r) => r.status === 'unreachable').map((r) => r.serverId),
    changed: results.filter((r) => r.changed).map((r) => ({ serverId: r.serverId, status: r.status })),
  };
}
