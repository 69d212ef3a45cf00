import { ApplicationFailure } from '@temporalio/activity';
import type { PrismaClient } from '../lib/prisma';
import type { Redis } from '../lib/redis';
import type { Logger } from '../lib/logger';
import type { RouteHold } from '../domain/workspace-routes';
import { announceRoute, announceRouteAndWait } from '../lib/route-announce';

/** How long a request routed just before a hold may take to finish before its container stops. */
const IN_FLIGHT_GRACE_MS = 500;

export interface WorkspaceActivityDeps {
  prisma: PrismaClient;
  redis: Redis;
  logger: Logger;
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
  /** Container ports declared for previews at creation. */
  previewPorts: number[];
}

export interface RunningDetails {
  containerName: string;
  volumeName: string;
  networkName: string;
  internalIp: string;
  /** Host ports on the server's private address, as Docker chose them at this start. */
  httpPort: number;
  sshPort: number | null;
  publishedPorts: Record<string, number>;
  diskLimit: string;
}

export function createWorkspaceActivities({ prisma, redis, logger }: WorkspaceActivityDeps) {
  const log = logger.child({ component: 'workspace-records' });
  async function publish(workspaceId: string, status: string, reason?: string | null) {
    await Promise.all([
      redis.publish(workspaceEventsChannel(workspaceId), JSON.stringify({ workspaceId, status, reason: reason ?? null, at: new Date().toISOString() })),
      announceRoute(redis, workspaceId),
    ]);
  }

  return {
    /** The workspace as the API recorded it. (Raw SQL on this hot path: see loadCandidates.) */
    async getWorkspace(workspaceId: string): Promise<WorkspaceRecord> {
      const [ws] = await prisma.$queryRaw<{ id: string; ownerId: string; tier: string; image: string | null; strategy: string; constraints: Record<string, unknown> | null; serverId: string | null; previewPorts: number[] | null }[]>`
        SELECT id::text, owner_id AS "ownerId", tier, image, strategy, constraints, server_id::text AS "serverId", preview_ports AS "previewPorts" FROM workspaces WHERE id = ${workspaceId}::uuid`;
      if (!ws) throw ApplicationFailure.nonRetryable(`workspace ${workspaceId} does not exist`, 'WorkspaceNotFound');
      const constraints = (ws.constraints ?? null) as (Record<string, unknown> & { serverId?: string }) | null;
      return { ...ws, previewPorts: ws.previewPorts ?? [], constraints, requestedServerId: constraints?.serverId ?? null };
    },

    /**
     * Sets the workspace's status (and reason) and announces it. It ends any transition the
     * route was held for: a workspace that is not running has no ports to route to.
     */
    async setWorkspaceStatus(workspaceId: string, status: string, reason?: string | null): Promise<void> {
      const updated = await prisma.$executeRaw`UPDATE workspaces SET status = ${status}, status_reason = ${reason ?? null}, route_hold = NULL,
               http_port = CASE WHEN ${status} = 'running' THEN http_port END, ssh_port = CASE WHEN ${status} = 'running' THEN ssh_port END,
               published_ports = CASE WHEN ${status} = 'running' THEN published_ports END, updated_at = now()
         WHERE id = ${workspaceId}::uuid AND (${status} <> 'provisioning' OR status IN ('pending', 'provisioning'))`;
      // The API removes a row whose workflow it could not start, and deletes a pending one outright (its workflow
      // may not have run yet: no worker, or a queue behind). Either way provisioning finds no pending row here,
      // before it has made anything, and ends instead of bringing the workspace back.
      if (updated === 0 && status === 'provisioning') throw ApplicationFailure.nonRetryable(`workspace ${workspaceId} does not exist or was deleted`, 'WorkspaceNotFound');
      await publish(workspaceId, status, reason);
    },

    /**
     * Holds the workspace's route for a transition about to begin (moving, stopping, starting,
     * deleting): its URL answers what is happening instead of routing into it. The step that
     * ends the transition records the new state and clears the hold; null clears it after a failed step.
     */
    async holdRoute(workspaceId: string, hold: RouteHold | null): Promise<void> {
      await prisma.$executeRaw`UPDATE workspaces SET route_hold = ${hold}, updated_at = now() WHERE id = ${workspaceId}::uuid`;
      // The next step stops or removes the container: first every route table must have the hold.
      const { receivers, acknowledged } = await announceRouteAndWait(redis, workspaceId);
      if (acknowledged < receivers) log.warn({ workspaceId, receivers, acknowledged }, 'not every route table confirmed the hold in time; their catch-up will');
      // Requests routed just before the hold are still in flight: they finish before the container goes.
      if (hold && hold !== 'starting') await new Promise((r) => setTimeout(r, IN_FLIGHT_GRACE_MS));
    },

    /** Records where and how the workspace runs (the host ports of this start), then `running`: its route opens. */
    async recordRunning(workspaceId: string, d: RunningDetails): Promise<void> {
      await prisma.$executeRaw`
        UPDATE workspaces SET container_name = ${d.containerName}, volume_name = ${d.volumeName}, network_name = ${d.networkName},
               internal_ip = ${d.internalIp}, http_port = ${d.httpPort}, ssh_port = ${d.sshPort}, published_ports = ${JSON.stringify(d.publishedPorts)}::jsonb,
               disk_limit = ${d.diskLimit}, route_hold = NULL,
               status = 'running', status_reason = NULL, last_activity_at = now(), updated_at = now()
         WHERE id = ${workspaceId}::uuid`;
      await publish(workspaceId, 'running');
    },
  };
}
