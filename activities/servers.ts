import { ApplicationFailure } from '@temporalio/activity';
import { auditVerdict, maintenanceEndsAt, normalizeArchitecture } from '../domain/servers';
import { BadCapacityLabelError, declaredCapacity, schedulableCapacity, type DeclaredCapacity } from '../domain/declared-capacity';
import { serverEndpoint, type EngineEndpoint } from '../lib/docker-fleet';
import type { PrismaClient } from '../lib/prisma';
import type { DaemonAudit, EngineFacts } from './docker';

export interface ServerActivityDeps {
  prisma: PrismaClient;
}

export class ServerNotFoundError extends Error {
  override name = 'ServerNotFoundError';
}

export function createServerActivities({ prisma }: ServerActivityDeps) {
  async function load(serverId: string) {
    const server = await prisma.workspaceServer.findUnique({ where: { id: serverId } });
    if (!server) throw ApplicationFailure.nonRetryable(`server ${serverId} does not exist`, 'ServerNotFoundError');
    return server;
  }

  return {
    /** The server's Docker endpoint (its address and TLS port) from the registry. */
    async getServerEndpoint(serverId: string): Promise<EngineEndpoint> {
      const s = await load(serverId);
      return serverEndpoint(s);
    },

    /** When the maintenance covering now ends (ISO time), or null when the server is not under maintenance. */
    async maintenanceEndsAt(serverId: string): Promise<string | null> {
      const now = new Date();
      // Raw SQL: every workspace start asks this, and the ORM's query planning costs more than the query.
      const windows = await prisma.$queryRaw<{ startsAt: Date; endsAt: Date }[]>`
        SELECT starts_at AS "startsAt", ends_at AS "endsAt" FROM maintenance_windows WHERE server_id = ${serverId}::uuid AND ends_at > ${now}`;
      return maintenanceEndsAt(windows, now)?.toISOString() ?? null;
    },

    /** Writes what onboarding learned and decides the server's status from the daemon audit. */
    async recordOnboarding(
      serverId: string,
      facts: EngineFacts,
      audit: DaemonAudit,
      strict: boolean,
    ): Promise<{ status: 'active' | 'error'; reason?: string }> {
      const verdict = auditVerdict(audit.findings, strict);
      const status = verdict.ok ? 'active' : 'error';
      const real = { cpu: facts.cpus, memoryMb: Math.floor(facts.memoryBytes / (1024 * 1024)), diskGb: audit.diskGb };
      let declared: DeclaredCapacity;
      try {
        declared = declaredCapacity(facts.labels ?? []);
      } catch (err) {
        // Retrying cannot fix the server's daemon.json; the operator reads this in lastError.
        if (err instanceof BadCapacityLabelError) throw ApplicationFailure.nonRetryable(err.message, err.name);
        throw err;
      }
      const total = schedulableCapacity(real, declared);
      await prisma.workspaceServer.update({
        where: { id: serverId },
        data: {
          totalCpu: total.cpu,
          totalMemoryMb: total.memoryMb,
          totalDiskGb: total.diskGb,
          hostCpus: facts.cpus,
          architecture: normalizeArchitecture(facts.architecture),
          dockerRuntime: facts.runtimes.includes('runsc') ? 'runsc' : facts.defaultRuntime,
          hasGpu: facts.gpus > 0,
          gpuCount: facts.gpus,
          daemonAudit: {
            checkedAt: new Date().toISOString(),
            strict,
            // Checks that failed but were not enforced (STRICT_DAEMON_AUDIT off): admins see them beside the findings.
            waived: verdict.waived,
            engine: { version: facts.serverVersion, apiVersion: facts.apiVersion, kernel: facts.kernelVersion, os: facts.os, storageDriver: facts.storageDriver },
            // Where the totals came from: the engine's own figures, and what its labels declared instead.
            capacity: { real, declared },
            findings: audit.findings.map((f) => ({ ...f })),
          },
          status,
          lastError: verdict.reason ?? null,
          missedHeartbeats: 0,
          statusBeforeUnreachable: null,
        },
      });
      return verdict.ok ? { status } : { status, reason: verdict.reason };
    },

    /** Marks a server `error` with the reason onboarding stopped. */
    async markServerError(serverId: string, message: string): Promise<void> {
      await prisma.workspaceServer.updateMany({ where: { id: serverId }, data: { status: 'error', lastError: message.slice(0, 2000) } });
    },
  };
}
