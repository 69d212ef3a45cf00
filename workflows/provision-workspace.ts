import { ApplicationFailure, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { Activities, Reservation, WorkspaceRecord } from '../activities';
import type { Strategy } from '../domain/placement';
import { TIERS, type TierName } from '../domain/tiers';
import { workspaceNames } from '../domain/container-spec';
import { dbLocalActivity, readinessActivity, workspaceDockerActivity } from './activity-options';
import { undoAll, type Undo } from './compensate';
import { waitOutMaintenance } from './maintenance';

const db = proxyLocalActivities<Activities>(dbLocalActivity);
const docker = proxyActivities<Activities>(workspaceDockerActivity);
const ready = proxyActivities<Activities>(readinessActivity);

/**
 * Provisioning as a saga: place and reserve → network and volume (at once) → container →
 * start and wait until ready → record. Each compensation is pushed once its step succeeded and they
 * run newest-first on failure; the volume is removed only if this workflow created it.
 */
export async function provisionWorkspace(ws: WorkspaceRecord, createdBy: string, defaultImage: string, phase: (p: string) => void): Promise<Reservation & { diskLimit: string }> {
  const tier = TIERS[ws.tier as TierName];
  if (!tier) throw ApplicationFailure.nonRetryable(`unknown tier ${ws.tier}`, 'BadRequest');
  const c = (ws.constraints ?? {}) as { architecture?: string; region?: string; labels?: Record<string, string>; gpu?: { type?: string; count: number } };
  const compensations: Undo[] = [];
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
    await waitOutMaintenance(reservation.serverId, (until) => until && phase('waiting-for-maintenance'), { local: true });

    // Undo steps first: a failed attempt may have made either. The volume goes only if this
    // workflow made it (its label says so).
    phase('network-and-volume');
    compensations.push({ step: 'volume', run: () => docker.removeVolumeCreatedBy(endpoint, ws.id, createdBy) });
    compensations.push({ step: 'network', run: () => docker.removeNetwork(endpoint, ws.id) });
    const { storage } = await docker.prepareWorkspaceResources(endpoint, ws.id, ws.ownerId, tier.name, createdBy);

    phase('container');
    const image = ws.image ?? defaultImage;
    compensations.push({ step: 'container', run: () => docker.removeContainer(endpoint, ws.id) });
    await docker.ensureContainer(endpoint, { workspaceId: ws.id, ownerId: ws.ownerId, tier, image, runtime: reservation.runtime, diskLimitSupported: storage.supported, publishAddress: reservation.publishAddress, previewPorts: ws.previewPorts, hostCpus: reservation.hostCpus });

    phase('starting');
    const net = await ready.startAndWaitReady(endpoint, ws.id);

    phase('recording');
    const names = workspaceNames(ws.id);
    await db.recordRunning(ws.id, { containerName: names.container, volumeName: names.volume, networkName: names.network, ...net, diskLimit: storage.detail });
    return { ...reservation, diskLimit: storage.detail };
  } catch (err) {
    await undoAll(compensations, 'provisioning');
    throw err;
  }
}
