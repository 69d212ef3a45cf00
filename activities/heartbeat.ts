import { afterHeartbeat, MONITORED_STATUSES } from '../domain/servers';
import { hostPortsFromSummary } from '../domain/container-spec';
import { announceRoute } from '../lib/route-announce';
import { serverEndpoint, type DockerFleet } from '../lib/docker-fleet';
import type { Logger } from '../lib/logger';
import type { PrismaClient } from '../lib/prisma';
import type { Redis } from '../lib/redis';
import { within } from '../lib/timeout';

export interface HeartbeatActivityDeps {
  prisma: PrismaClient;
  redis: Redis;
  fleet: DockerFleet;
  logger: Logger;
}

export interface ContainerStats {
  name: string;
  workspaceId: string;
  cpu: number;
  memoryMb: number;
}

export interface HeartbeatResult {
  serverId: string;
  reachable: boolean;
  status: string;
  changed: boolean;
}

export const heartbeatCacheKey = (serverId: string) => `podex:server:${serverId}:heartbeat`;
export const SERVER_EVENTS_CHANNEL = 'podex:events:servers';

interface DockerStats {
  cpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
  memory_stats?: { usage?: number; stats?: { cache?: number; inactive_file?: number } };
}

/** Cores in use and resident memory from one `docker stats` sample (with its previous sample). */
export function usageFromStats(s: DockerStats): { cpu: number; memoryMb: number } {
  const cpuDelta = (s.cpu_stats?.cpu_usage?.total_usage ?? 0) - (s.precpu_stats?.cpu_usage?.total_usage ?? 0);
  const sysDelta = (s.cpu_stats?.system_cpu_usage ?? 0) - (s.precpu_stats?.system_cpu_usage ?? 0);
  const cpus = s.cpu_stats?.online_cpus ?? 1;
  const cpu = cpuDelta > 0 && sysDelta > 0 ? (cpuDelta / sysDelta) * cpus : 0;
  const mem = (s.memory_stats?.usage ?? 0) - (s.memory_stats?.stats?.inactive_file ?? s.memory_stats?.stats?.cache ?? 0);
  return { cpu: Math.round(cpu * 1000) / 1000, memoryMb: Math.max(0, Math.round(mem / (1024 * 1024))) };
}

export function createHeartbeatActivities({ prisma, redis, fleet, logger }: HeartbeatActivityDeps) {
  const log = logger.child({ component: 'heartbeat' });

  /**
   * A container Docker restarted by itself (its restart policy, a server reboot) may have new
   * host ports: the records of the server's running workspaces are set to what the engine
   * reports, and each change is announced to the route tables. A workspace in a transition
   * (its route held) belongs to the step that holds it.
   */
  async function reconcilePorts(serverId: string, publishAddress: string, list: { Labels: Record<string, string>; Ports: { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[] }[]): Promise<number> {
    const rows = await prisma.$queryRaw<{ id: string; http_port: number | null; ssh_port: number | null; published_ports: Record<string, number> | null }[]>`
      SELECT id::text, http_port, ssh_port, published_ports FROM workspaces
       WHERE server_id = ${serverId}::uuid AND status = 'running' AND route_hold IS NULL`;
    const running = new Map(list.map((c) => [c.Labels['podex.workspace_id'], c]));
    let fixed = 0;
    for (const r of rows) {
      const c = running.get(r.id);
      if (!c) continue;
      const now = hostPortsFromSummary(c.Ports, publishAddress);
      if (!now.httpPort) continue;
      const same = now.httpPort === r.http_port && now.sshPort === r.ssh_port && JSON.stringify(now.publishedPorts) === JSON.stringify(r.published_ports ?? {});
      if (same) continue;
      const n = await prisma.$executeRaw`
        UPDATE workspaces SET http_port = ${now.httpPort}, ssh_port = ${now.sshPort}, published_ports = ${JSON.stringify(now.publishedPorts)}::jsonb, updated_at = now()
         WHERE id = ${r.id}::uuid AND server_id = ${serverId}::uuid AND status = 'running' AND route_hold IS NULL`;
      if (n) {
        fixed++;
        log.warn({ serverId, workspaceId: r.id, was: r.http_port, now: now.httpPort }, 'workspace host ports changed outside a workflow; record and route updated');
        await announceRoute(redis, r.id);
      }
    }
    return fixed;
  }

  return {
    /** Servers the fleet heartbeat watches (optionally only the given ones). */
    async listMonitoredServers(serverIds?: string[]): Promise<string[]> {
      const rows = await prisma.workspaceServer.findMany({
        where: { status: { in: [...MONITORED_STATUSES] }, ...(serverIds ? { id: { in: serverIds } } : {}) },
        select: { id: true },
        orderBy: { hostname: 'asc' },
      });
      return rows.map((r) => r.id);
    },

    /**
     * One heartbeat of one server over its Docker API: usage, per-container stats and running
     * workspaces go to PostgreSQL and, with a TTL, to Redis. A server that does not answer has
     * a miss counted; K misses make it `unreachable` and the first answer brings it back.
     * Never throws for an unreachable engine: a miss is a result, not a failure.
     */
    async heartbeatServer(serverId: string, threshold: number, timeoutMs: number, ttlSeconds: number): Promise<HeartbeatResult> {
      const server = await prisma.workspaceServer.findUnique({ where: { id: serverId } });
      if (!server) return { serverId, reachable: false, status: 'deleted', changed: false };
      const docker = fleet.engine(serverEndpoint(server));

      let sample: { containers: ContainerStats[]; diskGb: number } | undefined;
      let error: string | undefined;
      try {
        sample = await within(
          (async () => {
            const list = await docker.listContainers({ filters: { label: ['podex.workspace_id'], status: ['running'] } });
            // One-shot stats answer at once (no second sample); CPU is the delta against the
            // previous heartbeat's counters, kept in Redis.
            const cpuKey = `podex:server:${serverId}:cpu`;
            const previous = list.length ? await redis.hgetall(cpuKey) : {};
            const counters: Record<string, string> = {};
            const containers = await Promise.all(
              list.map(async (c) => {
                const stats = (await docker.getContainer(c.Id).stats({ stream: false, 'one-shot': true } as { stream: false })) as unknown as DockerStats;
                const [total, system] = (previous[c.Id] ?? '').split(',').map(Number);
                if (total >= 0 && system > 0) stats.precpu_stats = { cpu_usage: { total_usage: total }, system_cpu_usage: system };
                counters[c.Id] = `${stats.cpu_stats?.cpu_usage?.total_usage ?? 0},${stats.cpu_stats?.system_cpu_usage ?? 0}`;
                return { name: (c.Names[0] ?? c.Id).replace(/^\//, ''), workspaceId: c.Labels['podex.workspace_id'], ...usageFromStats(stats) };
              }),
            );
            const tx = redis.multi().del(cpuKey);
            if (list.length) tx.hset(cpuKey, counters).expire(cpuKey, ttlSeconds * 2);
            await tx.exec();
            const df = (await docker.df()) as { Volumes?: { Labels?: Record<string, string> | null; UsageData?: { Size?: number } }[] };
            const bytes = (df.Volumes ?? [])
              .filter((v) => v.Labels?.['podex.managed'] === 'true')
              .reduce((n, v) => n + Math.max(0, v.UsageData?.Size ?? 0), 0);
            await reconcilePorts(serverId, (server.privateAddress ?? server.ipAddress).replace(/\/\d+$/, ''), list);
            return { containers, diskGb: Math.round(bytes / 1024 ** 3) };
          })(),
          timeoutMs,
          'docker',
        );
      } catch (err) {
        error = (err as Error).message;
      }

      const next = afterHeartbeat(
        { status: server.status ?? 'active', missedHeartbeats: server.missedHeartbeats, statusBeforeUnreachable: server.statusBeforeUnreachable },
        sample !== undefined,
        threshold,
      );
      const usage = sample && {
        usedCpu: Math.round(sample.containers.reduce((n, c) => n + c.cpu, 0) * 1000) / 1000,
        usedMemoryMb: sample.containers.reduce((n, c) => n + c.memoryMb, 0),
        usedDiskGb: sample.diskGb,
        activeWorkspaces: sample.containers.length,
        lastHeartbeat: new Date(),
      };
      // Conditional on the status read above, so a concurrent admin change is never overwritten.
      const { count } = await prisma.workspaceServer.updateMany({
        where: { id: serverId, status: server.status },
        data: {
          ...usage,
          status: next.status,
          missedHeartbeats: next.missedHeartbeats,
          statusBeforeUnreachable: next.statusBeforeUnreachable,
          ...(error ? { lastError: `heartbeat: ${error}`.slice(0, 2000) } : {}),
        },
      });
      const changed = count === 1 && next.status !== server.status;
      if (sample && usage) {
        await redis.set(heartbeatCacheKey(serverId), JSON.stringify({ ...usage, status: next.status, containers: sample.containers }), 'EX', ttlSeconds);
      }
      if (changed) {
        log.warn({ serverId, from: server.status, to: next.status, missed: next.missedHeartbeats }, 'server status changed by heartbeat');
        await redis.publish(SERVER_EVENTS_CHANNEL, JSON.stringify({ serverId, status: next.status, at: new Date().toISOString() }));
      }
      return { serverId, reachable: sample !== undefined, status: count === 1 ? next.status : (server.status ?? 'active'), changed };
    },
  };
}
