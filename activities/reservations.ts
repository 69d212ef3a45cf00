import { ApplicationFailure } from '@temporalio/activity';
import { place, withDetail, type Candidate, type PlacementRequest } from '../domain/placement';
import { Prisma, type PrismaClient } from '../lib/prisma';

export interface ReservationDeps {
  prisma: PrismaClient;
  overcommit: number;
}

/** A placement request for one workspace (overcommit and affinity are filled in here). */
export type ReserveRequest = { workspaceId: string } & Omit<PlacementRequest, 'overcommit' | 'affinity'>;

export interface Reservation {
  serverId: string;
  host: string;
  port: number;
  runtime: string;
  /** The server's private address: the workspace's ports are published there, never on 0.0.0.0. */
  publishAddress: string;
  /** The engine's real CPU count, which the container's CPU limit may not exceed; null when not known. */
  hostCpus: number | null;
}

/** A server row (id, `host(ip_address)`, port, runtime, private address, CPUs) as a reservation, with the registry's defaults. */
export function toReservation(row: { server_id: string; host: string; docker_port: number | null; docker_runtime: string | null; publish_address?: string | null; host_cpus?: number | null }): Reservation {
  return { serverId: row.server_id, host: row.host, port: row.docker_port ?? 2376, runtime: row.docker_runtime ?? 'runsc', publishAddress: row.publish_address ?? row.host, hostCpus: row.host_cpus ?? null };
}

/**
 * The condition under which a server (the `workspace_servers` row in scope) may take `need`:
 * active, not cordoned, and its counters stay within capacity × overcommit. Provisioning and
 * migration both reserve under it, in a statement that re-checks it under the row lock.
 */
export function serverHasRoom(need: { cpu: number; memoryMb: number; diskGb: number }, overcommit: number) {
  return Prisma.sql`status = 'active' AND NOT cordoned
    AND reserved_cpu + ${need.cpu} <= total_cpu * ${overcommit}
    AND reserved_memory_mb + ${need.memoryMb} <= total_memory_mb * ${overcommit}
    AND reserved_disk_gb + ${need.diskGb} <= total_disk_gb * ${overcommit}`;
}

interface CandidateRow {
  id: string;
  name: string;
  hostname: string;
  status: string | null;
  cordoned: boolean;
  in_maintenance: boolean;
  architecture: string | null;
  region: string | null;
  labels: Record<string, unknown> | null;
  has_gpu: boolean | null;
  gpu_type: string | null;
  gpu_count: number | null;
  total_cpu: number;
  total_memory_mb: number;
  total_disk_gb: number;
  reserved_cpu: number;
  reserved_memory_mb: number;
  reserved_disk_gb: number;
  owner_workspaces: number;
}

/**
 * Every server as a placement candidate, with whether it is in maintenance now and, for
 * AFFINITY, how many of the workspace owner's other live workspaces it holds. One query:
 * placement runs for every new workspace, in the API's check (within its transaction) and again in the workflow.
 */
export async function loadCandidates(prisma: Pick<PrismaClient, '$queryRaw'>, workspaceId: string, withAffinity: boolean): Promise<{ candidates: Candidate[]; affinity: string[] }> {
  const owned = withAffinity
    ? Prisma.sql`(SELECT count(*)::int FROM workspaces w
                   WHERE w.server_id = s.id AND w.status NOT IN ('deleted', 'failed') AND w.id <> ${workspaceId}::uuid
                     AND w.owner_id = (SELECT owner_id FROM workspaces WHERE id = ${workspaceId}::uuid))`
    : Prisma.sql`0`;
  const rows = await prisma.$queryRaw<CandidateRow[]>`
    SELECT s.id::text, s.name, s.hostname, s.status, s.cordoned, s.architecture, s.region, s.labels,
           s.has_gpu, s.gpu_type, s.gpu_count, s.total_cpu, s.total_memory_mb, s.total_disk_gb,
           s.reserved_cpu, s.reserved_memory_mb, s.reserved_disk_gb,
           s.id IN (SELECT server_id FROM maintenance_windows WHERE starts_at <= now() AND ends_at > now()) AS in_maintenance,
           ${owned} AS owner_workspaces
      FROM workspace_servers s`;
  const candidates = rows.map((s) => ({
    id: s.id,
    name: s.name === s.hostname ? s.name : `${s.name} (${s.hostname})`,
    status: s.status ?? 'active',
    cordoned: s.cordoned,
    inMaintenance: s.in_maintenance,
    architecture: s.architecture,
    region: s.region,
    labels: s.labels ?? {},
    hasGpu: s.has_gpu ?? false,
    gpuType: s.gpu_type,
    gpuCount: s.gpu_count ?? 0,
    total: { cpu: s.total_cpu, memoryMb: s.total_memory_mb, diskGb: s.total_disk_gb },
    reserved: { cpu: s.reserved_cpu, memoryMb: s.reserved_memory_mb, diskGb: s.reserved_disk_gb },
  }));
  const affinity = rows
    .filter((r) => r.owner_workspaces > 0)
    .sort((a, b) => b.owner_workspaces - a.owner_workspaces)
    .map((r) => r.id);
  return { candidates, affinity };
}

interface ReservationRow {
  server_id: string | null;
  host: string | null;
  docker_port: number | null;
  docker_runtime: string | null;
  publish_address: string | null;
  host_cpus: number | null;
}

export function createReservationActivities({ prisma, overcommit }: ReservationDeps) {
  /** The workspace's reservation, if it holds one. */
  async function reservationOf(workspaceId: string): Promise<Reservation | null> {
    const [row] = await prisma.$queryRaw<ReservationRow[]>`
      SELECT s.id::text AS server_id, host(s.ip_address) AS host, host(COALESCE(s.private_address, s.ip_address)) AS publish_address, s.docker_port, s.docker_runtime, s.host_cpus
        FROM workspaces w LEFT JOIN workspace_servers s ON s.id = w.server_id AND w.assigned_cpu IS NOT NULL
       WHERE w.id = ${workspaceId}::uuid`;
    if (!row) throw ApplicationFailure.nonRetryable(`workspace ${workspaceId} does not exist`, 'WorkspaceNotFound');
    return row.server_id ? toReservation({ ...row, server_id: row.server_id, host: row.host! }) : null;
  }

  /**
   * One statement: locks the workspace row (only while it holds no reservation), adds the
   * need to the server's counters only if they stay within capacity — evaluated on the
   * newest row under its lock, so concurrent placements cannot overbook — and records the
   * assignment on the workspace. Null when the server is full (or locked, with skipLocked).
   */
  async function claim(r: ReserveRequest, serverId: string, skipLocked: boolean): Promise<Reservation | null> {
    const [won] = await prisma.$queryRaw<{ server_id: string; host: string; docker_port: number | null; docker_runtime: string | null; publish_address: string | null; host_cpus: number | null }[]>`
      WITH ws AS (
        SELECT id FROM workspaces WHERE id = ${r.workspaceId}::uuid AND assigned_cpu IS NULL FOR UPDATE
      ), target AS (
        SELECT id FROM workspace_servers
         WHERE id = ${serverId}::uuid AND EXISTS (SELECT 1 FROM ws) AND ${serverHasRoom(r.need, overcommit)}
         FOR UPDATE ${skipLocked ? Prisma.sql`SKIP LOCKED` : Prisma.empty}
      ), srv AS (
        UPDATE workspace_servers
           SET reserved_cpu = reserved_cpu + ${r.need.cpu}, reserved_memory_mb = reserved_memory_mb + ${r.need.memoryMb},
               reserved_disk_gb = reserved_disk_gb + ${r.need.diskGb}
         WHERE id = (SELECT id FROM target)
        RETURNING id, ip_address, private_address, docker_port, docker_runtime, host_cpus
      ), claimed AS (
        UPDATE workspaces w
           SET server_id = srv.id, assigned_cpu = ${r.need.cpu}, assigned_memory_mb = ${r.need.memoryMb}, assigned_disk_gb = ${r.need.diskGb}
          FROM srv WHERE w.id = (SELECT id FROM ws)
        RETURNING w.id
      )
      SELECT srv.id::text AS server_id, host(srv.ip_address) AS host, host(COALESCE(srv.private_address, srv.ip_address)) AS publish_address, srv.docker_port, srv.docker_runtime, srv.host_cpus
        FROM srv, claimed`;
    return won ? toReservation(won) : null;
  }

  return {
    /**
     * Places the workspace and reserves capacity on the best server that can still take it
     * (see `claim`). Idempotent: a workspace that already holds a reservation gets it back.
     */
    async reserveCapacity(r: ReserveRequest): Promise<Reservation> {
      const { candidates, affinity } = await loadCandidates(prisma, r.workspaceId, r.strategy === 'AFFINITY');
      const placement = place(candidates, { ...r, overcommit, affinity });
      if (!placement.ok) {
        // A retry of a workspace that holds its reservation already (on a server now full),
        // or one that does not exist: both answers are clearer than "no capacity".
        const held = await reservationOf(r.workspaceId);
        if (held) return held;
        throw ApplicationFailure.nonRetryable(withDetail(placement), 'NoCapacity', placement.excluded);
      }
      // First pass: a server whose row another reservation holds locked right now is passed
      // over for the next-ranked one (it is about to be fuller anyway), so concurrent requests
      // spread out instead of queueing on one row. Second pass: wait for the locks.
      for (const skipLocked of [true, false]) {
        for (const s of placement.ranked) {
          const won = await claim(r, s.id, skipLocked);
          if (won) return won;
          // The server was full or locked, or another attempt of this same workspace holds a
          // reservation now (then that one is the answer).
          const again = await reservationOf(r.workspaceId);
          if (again) return again;
        }
      }
      throw ApplicationFailure.nonRetryable('no capacity: every eligible server was filled by concurrent requests', 'NoCapacity');
    },

    /** Gives the workspace's capacity back to its server; a second call finds nothing to release. */
    async releaseCapacity(workspaceId: string): Promise<boolean> {
      const n = await prisma.$executeRaw`
        WITH ws AS (
          SELECT id, server_id, assigned_cpu, assigned_memory_mb, assigned_disk_gb
            FROM workspaces WHERE id = ${workspaceId}::uuid AND assigned_cpu IS NOT NULL FOR UPDATE
        ), cleared AS (
          UPDATE workspaces w SET assigned_cpu = NULL, assigned_memory_mb = NULL, assigned_disk_gb = NULL
            FROM ws WHERE w.id = ws.id
          RETURNING ws.server_id, ws.assigned_cpu, ws.assigned_memory_mb, ws.assigned_disk_gb
        )
        UPDATE workspace_servers s
           SET reserved_cpu = GREATEST(0, s.reserved_cpu - c.assigned_cpu),
               reserved_memory_mb = GREATEST(0, s.reserved_memory_mb - c.assigned_memory_mb),
               reserved_disk_gb = GREATEST(0, s.reserved_disk_gb - c.assigned_disk_gb)
          FROM cleared c WHERE s.id = c.server_id`;
      return n > 0;
    },
  };
}
