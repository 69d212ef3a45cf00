import { ApplicationFailure } from '@temporalio/activity';
import type { PrismaClient } from '../lib/prisma';
import type { Redis } from '../lib/redis';

export interface WorkspaceActivityDeps {
  prisma: PrismaClient;
  redis: Redis;
}

export const workspaceEventsChannel = (workspaceId: string) => `podex:events:workspace:${workspaceId}`;

export interface WorkspaceRecord {
  id: string;
  ownerId: string;
  tier: string;
  image: string | null;
  strategy: string;
  constraints: Record<string, unknown> | null;
  requestedServerId: string | null;
  /** The server it lives on now (null before placement). */
  serverId: string | null;
}

export interface RunningDetails {
  containerName: string;
  volumeName: string;
  networkName: string;
  internalIp: string;
  httpPort: number;
  diskLimit: string;
}

export function createWorkspaceActivities({ prisma, redis }: WorkspaceActivityDeps) {
  async function publish(workspaceId: string, status: string, reason?: string | null) {
    await redis.publish(workspaceEventsChannel(workspaceId), JSON.stringify({ workspaceId, status, reason: reason ?? null, at: new Date().toISOString() }));
  }

  return {
    /** The workspace as the API recorded it. (Raw SQL on this hot path: see loadCandidates.) */
    async getWorkspace(workspaceId: string): Promise<WorkspaceRecord> {
      const [ws] = await prisma.$queryRaw<{ id: string; ownerId: string; tier: string; image: string | null; strategy: string; constraints: Record<string, unknown> | null; serverId: string | null }[]>`
        SELECT id::text, owner_id AS "ownerId", tier, image, strategy, constraints, server_id::text AS "serverId" FROM workspaces WHERE id = ${workspaceId}::uuid`;
      if (!ws) throw ApplicationFailure.nonRetryable(`workspace ${workspaceId} does not exist`, 'WorkspaceNotFound');
      const constraints = (ws.constraints ?? null) as (Record<string, unknown> & { serverId?: string }) | null;
      return { ...ws, constraints, requestedServerId: constraints?.serverId ?? null };
    },

    /** Sets the workspace's status (and reason) and announces it on Redis. */
    async setWorkspaceStatus(workspaceId: string, status: string, reason?: string | null): Promise<void> {
      await prisma.$executeRaw`UPDATE workspaces SET status = ${status}, status_reason = ${reason ?? null}, updated_at = now() WHERE id = ${workspaceId}::uuid`;
      await publish(workspaceId, status, reason);
    },

    /** Records where and how the workspace runs, then `running`. */
    async recordRunning(workspaceId: string, d: RunningDetails): Promise<void> {
      await prisma.$executeRaw`
        UPDATE workspaces SET container_name = ${d.containerName}, volume_name = ${d.volumeName}, network_name = ${d.networkName},
               internal_ip = ${d.internalIp}, http_port = ${d.httpPort}, disk_limit = ${d.diskLimit},
               status = 'running', status_reason = NULL, last_activity_at = now(), updated_at = now()
         WHERE id = ${workspaceId}::uuid`;
      await publish(workspaceId, 'running');
    },
  };
}
