import { ApplicationFailure } from '@temporalio/activity';
import { place, withDetail, type PlacementRequest } from '../domain/placement';
import type { PrismaClient } from '../lib/prisma';
import type { Redis } from '../lib/redis';
import { announceRoute } from '../lib/route-announce';
import { loadCandidates, serverHasRoom, toReservation, type Reservation } from './reservations';

export interface MigrationDeps {
  prisma: PrismaClient;
  redis: Redis;
  overcommit: number;
}

export interface SlotRequest {
  workspaceId: string;
  workflowId: string;
  drainId?: string;
  sourceServerId: string;
  maxParallel: number;
}

export type TargetRequest = { workspaceId: string; sourceServerId: string } & Omit<PlacementRequest, 'overcommit' | 'affinity' | 'avoid'>;

/** The workspace's new home, once the switch is recorded. */
export interface SwitchDetails {
  internalIp: string;
  diskLimit: string;
  status: 'running' | 'stopped';
  /** The target's host ports (running only): the route switches to them in the same transaction. */
  ports?: { httpPort: number; sshPort: number | null; publishedPorts: Record<string, number> };
}

/** Where a workspace runs again after a move was rolled back: the source's host ports of its new start. */
export interface RollbackDetails {
  ports?: { httpPort: number; sshPort: number | null; publishedPorts: Record<string, number> };
}

/**
 * The database side of moving a workspace: a fleet-wide migration slot, the capacity held
 * on the target, and the switch of the record. Every step is idempotent by workspace id.
 */
export function createMigrationActivities({ prisma, redis, overcommit }: MigrationDeps) {
  return {
    /**
     * Takes one of the fleet-wide migration slots if fewer than `maxParallel` migrations are
     * in flight anywhere (every drain and single migration counts), under one advisory lock
     * so that two requests cannot both see room for one. Returns how many are in flight.
     */
    async acquireMigrationSlot(r: SlotRequest): Promise<{ acquired: boolean; inFlight: number }> {
      return prisma.$transaction(async (tx) => {
        await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext('podex:migration-slots'))`;
        const mine = await tx.migration.findUnique({ where: { workspaceId: r.workspaceId } });
        const inFlight = await tx.migration.count();
        if (mine) {
          if (mine.workflowId !== r.workflowId) return { acquired: false, inFlight };
          return { acquired: true, inFlight };
        }
        if (inFlight >= r.maxParallel) return { acquired: false, inFlight };
        await tx.migration.create({ data: { workspaceId: r.workspaceId, workflowId: r.workflowId, drainId: r.drainId, sourceServerId: r.sourceServerId } });
        return { acquired: true, inFlight: inFlight + 1 };
      });
    },

    /**
     * Chooses the target by placement (never the source, never an ineligible server) and
     * reserves the workspace's capacity there in one conditional statement, as provisioning
     * does. A migration that holds a target already gets it back.
     */
    async reserveMigrationTarget(r: TargetRequest): Promise<Reservation> {
      const held = await prisma.$queryRaw<{ server_id: string; host: string; docker_port: number | null; docker_runtime: string | null; publish_address: string | null; host_cpus: number | null }[]>`
        SELECT s.id::text AS server_id, host(s.ip_address) AS host, host(COALESCE(s.private_address, s.ip_address)) AS publish_address, s.docker_port, s.docker_runtime, s.host_cpus
          FROM migrations m JOIN workspace_servers s ON s.id = m.target_server_id WHERE m.workspace_id = ${r.workspaceId}::uuid`;
      if (held[0]) return toReservation(held[0]);
      const { candidates, affinity } = await loadCandidates(prisma, r.workspaceId, r.strategy === 'AFFINITY');
      const placement = place(candidates, { ...r, overcommit, affinity, avoid: [r.sourceServerId] });
      if (!placement.ok) throw ApplicationFailure.nonRetryable(withDetail(placement), 'NoCapacity', placement.excluded);
      for (const s of placement.ranked) {
        const [won] = await prisma.$queryRaw<{ server_id: string; host: string; docker_port: number | null; docker_runtime: string | null; publish_address: string | null; host_cpus: number | null }[]>`
          WITH m AS (
            SELECT workspace_id FROM migrations WHERE workspace_id = ${r.workspaceId}::uuid AND target_server_id IS NULL FOR UPDATE
          ), srv AS (
            UPDATE workspace_servers
               SET reserved_cpu = reserved_cpu + ${r.need.cpu}, reserved_memory_mb = reserved_memory_mb + ${r.need.memoryMb},
                   reserved_disk_gb = reserved_disk_gb + ${r.need.diskGb}
             WHERE id = ${s.id}::uuid AND EXISTS (SELECT 1 FROM m) AND ${serverHasRoom(r.need, overcommit)}
            RETURNING id, ip_address, private_address, docker_port, docker_runtime, host_cpus
          ), held AS (
            UPDATE migrations SET target_server_id = srv.id, reserved_cpu = ${r.need.cpu}, reserved_memory_mb = ${r.need.memoryMb}, reserved_disk_gb = ${r.need.diskGb}
              FROM srv WHERE workspace_id = (SELECT workspace_id FROM m)
            RETURNING workspace_id
          )
          SELECT srv.id::text AS server_id, host(srv.ip_address) AS host, host(COALESCE(srv.private_address, srv.ip_address)) AS publish_address, srv.docker_port, srv.docker_runtime, srv.host_cpus FROM srv, held`;
        if (won) return toReservation(won);
      }
      throw ApplicationFailure.nonRetryable('no capacity: every eligible target was filled by concurrent requests', 'NoCapacity');
    },

    /**
     * The switch, in one transaction: the workspace now lives on the target, the source's
     * counters give its capacity back, the target's reservation becomes the workspace's own,
     * and the slot is freed. A second call finds the switch done and changes nothing.
     */
    async switchWorkspaceServer(workspaceId: string, d: SwitchDetails): Promise<{ switched: boolean }> {
      const p = d.ports;
      const r = await prisma.$transaction(async (tx) => {
        const [m] = await tx.$queryRaw<{ target_server_id: string | null }[]>`
          SELECT target_server_id::text FROM migrations WHERE workspace_id = ${workspaceId}::uuid FOR UPDATE`;
        if (!m) return { switched: false };
        if (!m.target_server_id) throw ApplicationFailure.nonRetryable('the migration holds no target', 'NoTarget');
        await tx.$executeRaw`
          UPDATE workspace_servers s
             SET reserved_cpu = GREATEST(0, s.reserved_cpu - w.assigned_cpu),
                 reserved_memory_mb = GREATEST(0, s.reserved_memory_mb - w.assigned_memory_mb),
                 reserved_disk_gb = GREATEST(0, s.reserved_disk_gb - w.assigned_disk_gb)
            FROM workspaces w WHERE w.id = ${workspaceId}::uuid AND s.id = w.server_id AND w.assigned_cpu IS NOT NULL`;
        await tx.$executeRaw`
          UPDATE workspaces w
             SET server_id = m.target_server_id, assigned_cpu = m.reserved_cpu, assigned_memory_mb = m.reserved_memory_mb,
                 assigned_disk_gb = m.reserved_disk_gb, internal_ip = ${d.internalIp}, disk_limit = ${d.diskLimit},
                 http_port = ${p?.httpPort ?? null}, ssh_port = ${p?.sshPort ?? null},
                 published_ports = ${p ? JSON.stringify(p.publishedPorts) : null}::jsonb, route_hold = NULL,
                 status = ${d.status}, status_reason = NULL, updated_at = now()
            FROM migrations m WHERE m.workspace_id = w.id AND w.id = ${workspaceId}::uuid`;
        await tx.migration.delete({ where: { workspaceId } });
        return { switched: true };
      });
      // The route follows the record: every proxy request from here on goes to the target.
      await announceRoute(redis, workspaceId);
      return r;
    },

    /**
     * Starts a drain: the server takes no new workspaces (cordoned, status `draining`).
     * Returns the status it had, for an abort to restore.
     */
    async beginDrain(serverId: string): Promise<{ previousStatus: string }> {
      const [row] = await prisma.$queryRaw<{ previous: string | null }[]>`
        UPDATE workspace_servers s SET cordoned = true, status = 'draining', updated_at = now()
          FROM (SELECT id, status AS previous FROM workspace_servers WHERE id = ${serverId}::uuid FOR UPDATE) old
         WHERE s.id = old.id RETURNING old.previous`;
      if (!row) throw ApplicationFailure.nonRetryable(`server ${serverId} does not exist`, 'ServerNotFoundError');
      return { previousStatus: row.previous === 'draining' ? 'active' : (row.previous ?? 'active') };
    },

    /** Ends a drain: `drained` when it emptied the server; otherwise back in service (uncordoned, the old status). */
    async endDrain(serverId: string, outcome: 'drained' | 'restored', previousStatus: string): Promise<void> {
      if (outcome === 'drained') {
        await prisma.$executeRaw`UPDATE workspace_servers SET status = 'drained', updated_at = now() WHERE id = ${serverId}::uuid`;
      } else {
        await prisma.$executeRaw`UPDATE workspace_servers SET status = ${previousStatus}, cordoned = false, updated_at = now() WHERE id = ${serverId}::uuid`;
      }
    },

    /** The workspaces a drain must move off the server, with their status; deleted and failed ones need nothing. */
    async workspacesOnServer(serverId: string): Promise<{ id: string; status: string }[]> {
      return prisma.$queryRaw<{ id: string; status: string }[]>`
        SELECT id::text, status FROM workspaces WHERE server_id = ${serverId}::uuid AND status NOT IN ('deleted', 'failed') ORDER BY created_at`;
    },

    /**
     * Rollback: the target's capacity goes back and the slot is freed. Nothing to release is
     * fine. The route comes back to the source (with the host ports of its new start, if it
     * runs again) in the same transaction.
     */
    async releaseMigration(workspaceId: string, back: RollbackDetails = {}): Promise<boolean> {
      const p = back.ports;
      const n = await prisma.$transaction(async (tx) => {
        if (p) {
          await tx.$executeRaw`
            UPDATE workspaces SET route_hold = NULL, http_port = ${p.httpPort}, ssh_port = ${p.sshPort},
                   published_ports = ${JSON.stringify(p.publishedPorts)}::jsonb, updated_at = now()
             WHERE id = ${workspaceId}::uuid`;
        } else {
          await tx.$executeRaw`UPDATE workspaces SET route_hold = NULL, updated_at = now() WHERE id = ${workspaceId}::uuid`;
        }
        return tx.$executeRaw`
        WITH m AS (DELETE FROM migrations WHERE workspace_id = ${workspaceId}::uuid RETURNING *)
        UPDATE workspace_servers s
           SET reserved_cpu = GREATEST(0, s.reserved_cpu - m.reserved_cpu),
               reserved_memory_mb = GREATEST(0, s.reserved_memory_mb - m.reserved_memory_mb),
               reserved_disk_gb = GREATEST(0, s.reserved_disk_gb - m.reserved_disk_gb)
          FROM m WHERE s.id = m.target_server_id`;
      });
      await announceRoute(redis, workspaceId);
      return n > 0;
    },
  };
}
