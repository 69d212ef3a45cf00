import { createHash } from 'node:crypto';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure, Context } from '@temporalio/activity';
import tar from 'tar-stream';
import { READY_PROBE, WORKSPACE_MOUNT, workspaceNames } from '../domain/container-spec';
import { execIn } from '../lib/docker-exec';
import type { DockerFleet, EngineEndpoint } from '../lib/docker-fleet';
import { within } from '../lib/timeout';

const HOLD_FAILURES_IN_A_ROW = 3;

export interface MigrationDockerDeps {
  fleet: DockerFleet;
}

/** Per file: its type, mode and SHA-256 (regular files) or link target; the digest covers them all. */
export interface Manifest {
  files: number;
  bytes: number;
  digest: string;
}

export interface CopyResult {
  bytes: number;
  source: Manifest;
  target: Manifest;
}

/**
 * Reads a tar stream to its end and describes its content: each entry's path, type, mode
 * and SHA-256, sorted by path, hashed together. Owner and times are left out, so the same
 * data gives the same digest on any server.
 */
export async function manifestOf(archive: Readable): Promise<Manifest> {
  const extract = tar.extract();
  const entries: string[] = [];
  let bytes = 0;
  extract.on('entry', (header, stream, next) => {
    const h = createHash('sha256');
    stream.on('data', (chunk: Buffer) => {
      h.update(chunk);
      bytes += chunk.length;
    });
    stream.on('end', () => {
      const target = header.type === 'symlink' || header.type === 'link' ? ` -> ${header.linkname}` : '';
      entries.push(`${header.name.replace(/\/$/, '')}\t${header.type}\t${(header.mode ?? 0).toString(8)}\t${h.digest('hex')}${target}`);
      next();
    });
    stream.resume();
  });
  await pipeline(archive, extract);
  entries.sort();
  return { files: entries.length, bytes, digest: createHash('sha256').update(entries.join('\n')).digest('hex') };
}

/** Moving a workspace's data between engines, through their Docker APIs only (no SSH, no shared disk). */
export function createMigrationDockerActivities({ fleet }: MigrationDockerDeps) {
  const container = (e: EngineEndpoint, workspaceId: string) => fleet.engine(e).getContainer(workspaceNames(workspaceId).container);

  return {
    /**
     * Streams the workspace's volume from the (stopped) source container into the target's
     * (created, not started) container as a tar archive, hashing every file on the way, then
     * reads the target's copy back and hashes it again. Progress (bytes) is heartbeated. A
     * retried copy starts again from the first byte: the target volume is overwritten.
     */
    async copyVolume(source: EngineEndpoint, target: EngineEndpoint, workspaceId: string): Promise<CopyResult> {
      const ctx = Context.current();
      const from = (await container(source, workspaceId).getArchive({ path: WORKSPACE_MOUNT })) as unknown as Readable;
      let bytes = 0;
      let lastBeat = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _enc, done) {
          bytes += chunk.length;
          if (Date.now() - lastBeat > 1_000) {
            lastBeat = Date.now();
            ctx.heartbeat({ bytes });
          }
          done(null, chunk);
        },
      });
      const toTarget = new PassThrough();
      const toHash = new PassThrough();
      counter.pipe(toTarget);
      counter.pipe(toHash);
      // The archive's top entry is the mount's own name ("workspace/…"): unpacked at "/" it lands in the mount.
      const [, sourceManifest] = await Promise.all([
        container(target, workspaceId).putArchive(toTarget, { path: '/' }),
        manifestOf(toHash),
        pipeline(from, counter),
      ]);
      ctx.heartbeat({ bytes, verifying: true });
      const back = (await container(target, workspaceId).getArchive({ path: WORKSPACE_MOUNT })) as unknown as Readable;
      const targetManifest = await manifestOf(back);
      if (targetManifest.digest !== sourceManifest.digest) {
        throw ApplicationFailure.retryable(
          `checksum mismatch after copy: source ${sourceManifest.files} entries ${sourceManifest.digest.slice(0, 12)}, target ${targetManifest.files} entries ${targetManifest.digest.slice(0, 12)}`,
          'ChecksumMismatch',
        );
      }
      return { bytes, source: sourceManifest, target: targetManifest };
    },

    /** The data's manifest as it is on one server now (used to prove a rolled-back source is untouched). */
    async volumeManifest(endpoint: EngineEndpoint, workspaceId: string): Promise<Manifest> {
      return manifestOf((await container(endpoint, workspaceId).getArchive({ path: WORKSPACE_MOUNT })) as unknown as Readable);
    },

    /**
     * The workspace must stay healthy for `ms` before a switch is allowed: the readiness
     * probe every 500 ms, and three failures in a row (as Docker's health check counts them)
     * end the hold; a single slow probe on a busy server does not.
     */
    async holdHealthy(endpoint: EngineEndpoint, workspaceId: string, ms: number): Promise<{ probes: number; failed: number }> {
      const c = container(endpoint, workspaceId);
      const end = Date.now() + ms;
      let probes = 0;
      let failed = 0;
      let inARow = 0;
      for (;;) {
        const r = await within(execIn(c, READY_PROBE), 5_000, 'readiness probe').catch((err: Error) => ({ code: -1, out: err.message }));
        probes++;
        if (r.code === 0) inARow = 0;
        else {
          failed++;
          if (++inARow >= HOLD_FAILURES_IN_A_ROW) {
            throw ApplicationFailure.nonRetryable(`the workspace failed its health check on the target ${inARow} times in a row (${probes} probes): ${r.out || `exit ${r.code}`}`, 'TargetUnhealthy');
          }
        }
        Context.current().heartbeat({ probes, failed });
        if (Date.now() >= end && inARow === 0) return { probes, failed };
        await new Promise((r2) => setTimeout(r2, 500));
      }
    },
  };
}
