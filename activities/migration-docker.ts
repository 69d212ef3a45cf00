import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type Docker from 'dockerode';
import { WORKSPACE_MOUNT, workspaceNames } from '../domain/container-spec';
import { tarManifest, type Manifest } from '../lib/tar-manifest';
import { LISTING_SCRIPT, parseListing, withoutHeld, type HeldFile } from '../lib/tar-resume';
import { execIn } from '../lib/docker-exec';
import { createToolContainer, runTool, toolContainerOptions, type ToolsImage } from '../lib/tools-image';
import { throttledHeartbeat } from './progress';
import { probeReady } from './workspace-docker';
import type { DockerFleet, EngineEndpoint } from '../lib/docker-fleet';
import type { Logger } from '../lib/logger';

const HOLD_FAILURES_IN_A_ROW = 3;

export interface MigrationDockerDeps {
  fleet: DockerFleet;
  logger: Logger;
  /** The image every volume helper runs from (never the workspace's own). */
  tools: ToolsImage;
}

/** Per file: its type, mode and SHA-256 (regular files) or link target; the digest covers them all. */
export type { Manifest };

export interface CopyResult {
  /** The volume's archive, read from the source. */
  bytes: number;
  /** What went over to the target: less than `bytes` when a retry resumed an interrupted copy. */
  sentBytes: number;
  /** File content a retry found already whole on the target and did not send again. */
  resumedBytes: number;
  source: Manifest;
  target: Manifest;
}

/**
 * Every entry of the workspace volume (path, type, mode, SHA-256 or link target), sorted,
 * then hashed together: run by busybox in the platform's tools image on the volume's own
 * server (runc, no network, the volume read-only), so a check costs a local read, not a transfer.
 * Names are read NUL-terminated and printed escaped (see `escapeName` in lib/tar-manifest): a
 * name holding a newline is one entry, never two, so it can neither break the count nor make
 * the script look at a path outside the volume. Files of 1 MiB and more are hashed by openssl
 * (several times faster than busybox's sha256sum here); both print the same SHA-256.
 */
export const MANIFEST_SCRIPT = `ossl=$(command -v openssl); m=$(mktemp) || exit 1; trap 'rm -f "$m"' EXIT
nl='
'; tab=$(printf '\\t')
esc() { e=$1; e=\${e//\\\\/\\\\\\\\}; e=\${e//"$nl"/\\\\n}; e=\${e//"$tab"/\\\\t}; }
find . -print0 | sort -z | while IFS= read -r -d '' f; do esc "$f"; p=$e
  if [ -L "$f" ]; then l=$(readlink "$f"; echo .); l=\${l%.}; esc "\${l%"$nl"}"; printf '%s\\tlink\\t%s\\n' "$p" "$e";
  elif [ -f "$f" ]; then set -- $(stat -c '%a %s' "$f")
    if [ -n "$ossl" ] && [ "$2" -ge 1048576 ]; then h=$(openssl dgst -sha256 -r < "$f"); else h=$(sha256sum < "$f"); fi
    printf '%s\\tfile\\t%s\\t%s\\t%s\\n' "$p" "$1" "$2" "\${h%% *}";
  elif [ -d "$f" ]; then printf '%s\\tdir\\t%s\\n' "$p" "$(stat -c %a "$f")"; fi
done > "$m" && wc -l < "$m" && awk -F '\\t' '$2 == "file" { n += $4 } END { print n + 0 }' "$m" && sha256sum < "$m" | cut -d ' ' -f 1`;

/**
 * Joins the archive's chunks (about 11 KB each, as TLS records arrive) into pieces of at least
 * `size` bytes: each piece is one chunk of the upload and one pass through the hashing and
 * tar parsing. Measured with eight copies of 50 MB at once in one process: 2.65 CPU seconds
 * against 4.3–4.7 without it.
 */
function coalesced(size = 256 * 1024): Transform {
  let parts: Buffer[] = [];
  let held = 0;
  const take = () => {
    const piece = Buffer.concat(parts, held);
    parts = [];
    held = 0;
    return piece;
  };
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      parts.push(chunk);
      held += chunk.length;
      done(null, held >= size ? take() : undefined);
    },
    flush(done) {
      done(null, held > 0 ? take() : undefined);
    },
  });
}

/** The long-lived reader on each server (see `volumeReader`). */
const READER = 'podex-volume-reader';
const READER_LABELS = { 'podex.role': 'volume-reader' };
const readers = new WeakMap<Docker, Promise<{ container: Docker.Container; volumesDir: string }>>();
/** The reader's exit code when the volume's folder is not there for it. */
const NO_FOLDER = 97;
/** The Docker API's status code of a failed call (0 when it has none). */
const status = (err: unknown) => (err as { statusCode?: number }).statusCode ?? 0;
const gone = (err: unknown) => [404, 409].includes(status(err));

/**
 * A reader on the volume's own server that every check of a volume runs in by exec: one
 * runc container per server from the tools image with the engine's volumes folder mounted
 * read-only, no network, no capabilities but reading, a read-only root and a private /tmp.
 * It sees every workspace's files, so it runs only the platform's own binaries and no tenant
 * can reach it (the exec routes address workspace containers only). An exec costs the server
 * about a third of the CPU of creating, starting and removing a container per check
 * (measured here: 0.10 against 0.34 CPU seconds, a 50 MB hash included). It is made on first
 * use and kept (restart unless-stopped); the orchestrator alone reaches it, through the
 * engine's mutual-TLS API.
 */
function volumeReader(docker: Docker, tools: ToolsImage) {
  let reader = readers.get(docker);
  if (!reader) {
    reader = (async () => {
      const info = (await docker.info()) as { DockerRootDir?: string };
      const volumesDir = `${info.DockerRootDir ?? '/var/lib/docker'}/volumes`;
      const container = docker.getContainer(READER);
      let running = await container.inspect().then(
        (i) => {
          // One of that name but not ours (another image, other mounts, a writable root) is replaced.
          const ours =
            i.Config.Labels?.['podex.role'] === READER_LABELS['podex.role'] &&
            i.Config.Image === tools.image &&
            i.HostConfig.ReadonlyRootfs === true &&
            i.Mounts.some((m) => m.Destination === '/volumes' && m.Source === volumesDir && !m.RW && m.Propagation === 'rslave');
          return ours ? i.State.Running : undefined;
        },
        (err) => {
          if (status(err) === 404) return null;
          throw err;
        },
      );
      if (running === undefined) {
        await container.remove({ force: true });
        running = null;
      }
      if (running === null) {
        const opts = toolContainerOptions(tools, {
          name: READER,
          cmd: ['sh', '-c', 'trap "exit 0" TERM; while :; do sleep 3600 & wait $!; done'],
          // rslave: each volume's disk is mounted on its _data after the reader started (lib/volume-disk.ts);
          // with Docker's default (rprivate) the reader would see the empty folder under it.
          binds: [`${volumesDir}:/volumes:ro,rslave`],
          capAdd: ['DAC_READ_SEARCH'],
          labels: READER_LABELS,
          hostConfig: { RestartPolicy: { Name: 'unless-stopped' } },
        });
        await createToolContainer(docker, tools, opts).catch((err) => {
          if (status(err) !== 409) throw err; // another check made it meanwhile
        });
      }
      if (!running) {
        await container.start().catch((err) => {
          if (status(err) !== 304) throw err; // 304: started meanwhile
        });
      }
      return { container, volumesDir };
    })();
    readers.set(docker, reader);
    reader.catch(() => readers.delete(docker));
  }
  return reader;
}

/**
 * Runs `script` in the volume's folder, read-only, on the volume's own server: by exec in the
 * server's reader, or (a volume outside the engine's volumes folder, or no reader) in a
 * short-lived runc container of its own (`name`) with only that volume mounted.
 */
async function readVolume(docker: Docker, name: string, volume: string, tools: ToolsImage, script: string): Promise<{ code: number; out: string }> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const reader = await volumeReader(docker, tools).catch(() => null);
    if (!reader) break;
    const { Mountpoint: mountpoint } = await docker.getVolume(volume).inspect();
    if (!mountpoint.startsWith(`${reader.volumesDir}/`)) break;
    try {
      const r = await execIn(reader.container, ['sh', '-c', `cd "$1" || exit ${NO_FOLDER}\n${script}`, 'sh', `/volumes/${mountpoint.slice(reader.volumesDir.length + 1)}`]);
      if (r.code !== NO_FOLDER) return { code: r.code, out: r.out };
      // The reader does not see the volume (it was replaced by something else): checked and made again, once.
      readers.delete(docker);
    } catch (err) {
      // The reader was removed or stopped by someone: it is made again, once.
      if (!gone(err)) throw err;
      readers.delete(docker);
    }
  }
  return runTool(docker, tools, { name, cmd: ['sh', '-c', `cd /data || exit 1\n${script}`], binds: [`${volume}:/data:ro`], capAdd: ['DAC_READ_SEARCH'] });
}

export async function manifestOnServer(docker: Docker, workspaceId: string, tools: ToolsImage, side: string, volume = workspaceNames(workspaceId).volume): Promise<Manifest> {
  const r = await readVolume(docker, `podex-manifest-${workspaceId}-${side}`, volume, tools, MANIFEST_SCRIPT);
  const [files, bytes, digest] = r.out.trim().split('\n');
  if (r.code !== 0 || !/^[0-9a-f]{64}$/.test(digest ?? '')) throw new Error(`manifest of ${volume} failed (exit ${r.code}): ${r.out.slice(0, 300)}`);
  return { files: Number(files), bytes: Number(bytes), digest };
}

/** Regular files already on the target volume (size and mtime), listed on the target's own server. */
async function heldOnServer(docker: Docker, workspaceId: string, tools: ToolsImage): Promise<Map<string, HeldFile>> {
  const r = await readVolume(docker, `podex-listing-${workspaceId}`, workspaceNames(workspaceId).volume, tools, LISTING_SCRIPT);
  if (r.code !== 0) throw new Error(`listing the target volume failed (exit ${r.code}): ${r.out.slice(0, 300)}`);
  return parseListing(r.out);
}

/** Moving a workspace's data between engines, through their Docker APIs only (no SSH, no shared disk). */
export function createMigrationDockerActivities({ fleet, logger, tools }: MigrationDockerDeps) {
  const log = logger.child({ component: 'migration' });
  const container = (e: EngineEndpoint, workspaceId: string) => fleet.engine(e).getContainer(workspaceNames(workspaceId).container);

  return {
    /**
     * Streams the workspace's volume from the (stopped) source container into the target's
     * (created, not started) container as a tar archive. The source's manifest is made from
     * the archive as it passes (every file hashed as read from the source's disk), the
     * target's by the manifest script on the target's own server; should they disagree, the
     * same script on the source decides. Progress (bytes read, bytes sent) is heartbeated. A retry (the worker was lost, a
     * connection broke) resumes: the files the target already holds whole are left out of
     * the stream, and the checksums prove the result. The checks run from the tools image,
     * never from the workspace's image (the last argument, which workflows still pass, is unused).
     */
    async copyVolume(source: EngineEndpoint, target: EngineEndpoint, workspaceId: string, _image?: string): Promise<CopyResult> {
      const ctx = Context.current();
      const t0 = Date.now();
      const held = ctx.info.attempt > 1 ? await heldOnServer(fleet.engine(target), workspaceId, tools) : new Map<string, HeldFile>();
      const from = (await container(source, workspaceId).getArchive({ path: WORKSPACE_MOUNT })) as unknown as Readable;
      // A cancelled activity (its workflow gave up, or the server stopped hearing from it) stops streaming at once.
      ctx.cancelled.catch((err: Error) => from.destroy(err));
      const resumed = { skippedBytes: 0, skippedFiles: 0 };
      let bytes = 0;
      let sentBytes = 0;
      const beat = throttledHeartbeat();
      const reading = new Transform({
        transform(chunk: Buffer, _enc, done) {
          bytes += chunk.length;
          done(null, chunk);
        },
      });
      const sending = new Transform({
        transform(chunk: Buffer, _enc, done) {
          sentBytes += chunk.length;
          beat({ bytes, sentBytes, resumedBytes: resumed.skippedBytes });
          done(null, chunk);
        },
      });
      // Every byte read is also hashed, skipped files included: the manifest is the whole source's.
      const fromArchive = tarManifest(WORKSPACE_MOUNT);
      reading.pipe(fromArchive.sink);
      const read = from.pipe(coalesced()).pipe(reading);
      const body = held.size > 0 ? withoutHeld(read, WORKSPACE_MOUNT, held, resumed) : read;
      from.on('error', (err) => reading.destroy(err));
      // The archive's top entry is the mount's own name ("workspace/…"): unpacked at "/" it lands in the mount.
      await Promise.all([container(target, workspaceId).putArchive(sending, { path: '/' }), pipeline(body, sending)]);
      ctx.heartbeat({ bytes, sentBytes, resumedBytes: resumed.skippedBytes, verifying: true });
      const streamed = Date.now();
      // The target hashes its own disk on its own server: nothing is read back over the network.
      const archived = await fromArchive.manifest.catch(() => null);
      const targetManifest = await manifestOnServer(fleet.engine(target), workspaceId, tools, 'target');
      let src = archived;
      if (!src || src.digest !== targetManifest.digest) {
        // The source is stopped and unchanged: its own disk, hashed by the same script as the target's, decides.
        src = await manifestOnServer(fleet.engine(source), workspaceId, tools, 'source');
        if (archived && archived.digest !== src.digest) log.warn({ workspaceId, archive: archived, disk: src }, 'the archive manifest differs from the source disk manifest');
      }
      if (targetManifest.digest !== src.digest) {
        throw ApplicationFailure.retryable(
          `checksum mismatch after copy: source ${src.files} entries ${src.digest.slice(0, 12)}, target ${targetManifest.files} entries ${targetManifest.digest.slice(0, 12)}`,
          'ChecksumMismatch',
        );
      }
      log.info(
        { workspaceId, bytes, sentBytes, resumedBytes: resumed.skippedBytes, resumedFiles: resumed.skippedFiles, attempt: ctx.info.attempt, streamMs: streamed - t0, verifyMs: Date.now() - streamed },
        'volume copied and verified',
      );
      return { bytes, sentBytes, resumedBytes: resumed.skippedBytes, source: src, target: targetManifest };
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
        // The workspace has just passed its readiness probe: the hold's first probe is one interval on.
        await new Promise((r2) => setTimeout(r2, 500));
        const r = await probeReady(c);
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
      }
    },
  };
}
