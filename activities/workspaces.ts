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
    /** The workspace as the API recorded it. */
    async getWorkspace(workspaceId: string): Promise<WorkspaceRecord> {
      const ws = await prisma.workspace.findUnique({ where: { id: workspaceId } });
      if (!ws) throw ApplicationFailure.nonRetryable(`workspace ${workspaceId} does not exist`, 'WorkspaceNotFound');
      const constraints = (ws.constraints ?? null) as (Record<string, unknown> & { serverId?: string }) | null;
      return { id: ws.id, ownerId: ws.ownerId, tier: ws.tier, image: ws.image, strategy: ws.strategy, constraints, requestedServerId: constraints?.serverId ?? null, serverId: ws.serverId };
    },

    /** Sets the workspace's status (and reason) and announces it on Redis. */
    async setWorkspaceStatus(workspaceId: string, status: string, reason?: string | null): Promise<void> {
      await prisma.workspace.update({ where: { id: workspaceId }, data: { status, statusReason: reason ?? null } });
      await publish(workspaceId, status, reason);
    },

    /** Records where and how the workspace runs, then `running`. */
    async recordRunning(workspaceId: string, d: RunningDetails): Promise<void> {
      await prisma.workspace.update({
        where: { id: workspaceId },
        data: { ...d, status: 'running', statusReason: null, lastActivityAt: new Date() },
      });
      await publish(workspaceId, 'running');
    },
  };
}
