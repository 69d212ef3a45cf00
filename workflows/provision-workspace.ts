import { ApplicationFailure, CancellationScope, log, proxyActivities } from '@temporalio/workflow';
import type { Activities, Reservation, WorkspaceRecord } from '../activities';
import type { Strategy } from '../domain/placement';
import { TIERS, type TierName } from '../domain/tiers';
import { workspaceNames } from '../domain/container-spec';
import { dbActivity, readinessActivity, workspaceDockerActivity } from './activity-options';
import { waitOutMaintenance } from './maintenance';

const db = proxyActivities<Activities>(dbActivity);
const docker = proxyActivities<Activities>(workspaceDockerActivity);
const ready = proxyActivities<Activities>(readinessActivity);

/**
 * Provisioning as a saga: place and reserve → network → volume → container → start and
 * wait until ready → record. Each compensation is pushed once its step succeeded and they
 * run newest-first on failure; the volume is removed only if this workflow created it.
 */
export async function provisionWorkspace(ws: WorkspaceRecord, createdBy: string, defaultImage: string, phase: (p: string) => void): Promise<Reservation> {
  const tier = TIERS[ws.tier as TierName];
  if (!tier) throw ApplicationFailure.nonRetryable(`unknown tier ${ws.tier}`, 'BadRequest');
  const c = (ws.constraints ?? {}) as { architecture?: string; region?: string; labels?: Record<string, string>; gpu?: { type?: string; count: number } };
  const compensations: { step: string; run: () => Promise<unknown> }[] = [];
  try {
    phase('placing');
    const reservation = await db.reserveCapacity({
      workspaceId: ws.id,
      need: { cpu: tier.cpu, memoryMb: tier.memoryMb, diskGb: tier.diskGb },
      strategy: ws.strategy as Strategy,
      serverId: ws.requestedServerId ?? undefined,
      architecture: c.architecture,
      region: c.region,
      labels: c.labels,
      gpu: c.gpu,
    });
    compensations.push({ step: 'reservation', run: () => db.releaseCapacity(ws.id) });
    const endpoint = { host: reservation.host, port: reservation.port };
    await waitOutMaintenance(reservation.serverId, (until) => until && phase('waiting-for-maintenance'));

    phase('network');
    await docker.ensureNetwork(endpoint, ws.id, ws.ownerId, tier.name);
    compensations.push({ step: 'network', run: () => docker.removeNetwork(endpoint, ws.id) });

    phase('volume');
    if (await docker.ensureVolume(endpoint, ws.id, ws.ownerId, tier.name, createdBy)) {
      compensations.push({ step: 'volume', run: () => docker.removeVolume(endpoint, ws.id) });
    }

    phase('container');
    const disk = await docker.engineDiskLimitSupport(endpoint);
    const image = ws.image ?? defaultImage;
    compensations.push({ step: 'container', run: () => docker.removeContainer(endpoint, ws.id) });
    await docker.ensureContainer(endpoint, { workspaceId: ws.id, ownerId: ws.ownerId, tier, image, runtime: reservation.runtime, diskLimitSupported: disk.supported });

    phase('starting');
    const net = await ready.startAndWaitReady(endpoint, ws.id);

    phase('recording');
    const names = workspaceNames(ws.id);
    await db.recordRunning(ws.id, { containerName: names.container, volumeName: names.volume, networkName: names.network, ...net, diskLimit: disk.detail });
    return reservation;
  } catch (err) {
    await CancellationScope.nonCancellable(async () => {
      for (const comp of compensations.reverse()) {
        try {
          await comp.run();
        } catch (e) {
          log.warn('compensation failed; continuing', { step: comp.step, error: (e as Error).message });
        }
      }
    });
    throw err;
  }
}
