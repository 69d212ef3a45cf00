import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type Docker from 'dockerode';
import {
  DATABASE_NAME,
  DATABASE_STDIN_NAME,
  parseSnapshotTags,
  snapshotTags,
  workspaceStdinName,
  type RetentionPolicy,
  type SnapshotKind,
} from '../domain/backup';
import { WORKSPACE_MOUNT, workspaceNames } from '../domain/container-spec';
import { execIn } from '../lib/docker-exec';
import { serverEndpoint, type DockerFleet, type EngineEndpoint } from '../lib/docker-fleet';
import type { Logger } from '../lib/logger';
import type { PrismaClient } from '../lib/prisma';
import { ResticError, type Restic } from '../lib/restic';
import { rerooted } from '../lib/tar-resume';
import { createToolContainer, runTool, toolContainerOptions, type ToolsImage } from '../lib/tools-image';
import { attachVolumeDisk, removeVolumeWithDisk, DISK_LABEL, VolumeDiskUnsupportedError } from '../lib/volume-disk';
import { TIERS, type TierName } from '../domain/tiers';
import { throttledHeartbeat, whileBeating } from './progress';

export interface BackupSettings {
  retention: RetentionPolicy;
  checkSubset: string;
}

export interface BackupDeps {
  prisma: PrismaClient;
  fleet: DockerFleet;
  logger: Logger;
  restic: Restic;
  /** The database `pg_dump` saves; its credentials go to pg_dump through its environment only. */
  databaseUrl: string;
  backup: BackupSettings;
  /** The pg_dump binary (default: `pg_dump` on PATH). */
  pgDump?: string;
  /** The image every volume helper runs from (never a workspace's own). */
  tools: ToolsImage;
}

export interface SnapshotRecord {
  kind: SnapshotKind;
  snapshotId: string;
  bytes: number;
  workspaceId?: string;
  serverId?: string;
  database?: string;
}

export interface BackupTarget {
  workspaceId: string;
  serverId: string;
}

export interface SnapshotInfo {
  id: string;
  time: string;
  kind?: SnapshotKind;
  workspaceId?: string;
  serverId?: string;
  database?: string;
  run?: string;
}

/** Capabilities a helper that writes a workspace's files needs (root over files the workspace's user owns); nothing else. */
const WRITER_CAPS = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID'];

/** Empties the current folder, dot-files included (busybox find has no -delete; unmatched globs stay literal and rm -f skips them). */
const EMPTY_HERE = 'rm -rf -- * .[!.]* ..?*';

const NON_RETRYABLE_KINDS = new Set(['WrongPassword', 'NoRepository', 'SnapshotNotFound']);

/** A restic error as a Temporal failure of the same kind; a wrong password or a missing snapshot is not retried. */
function asFailure(err: unknown): unknown {
  if (!(err instanceof ResticError)) return err;
  return NON_RETRYABLE_KINDS.has(err.kind) ? ApplicationFailure.nonRetryable(err.message, err.kind) : ApplicationFailure.retryable(err.message, err.kind);
}

async function resticCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw asFailure(err);
  }
}

/** libpq's environment for a postgresql:// URL: the password never appears on a command line. */
export function pgEnv(databaseUrl: string, database?: string): NodeJS.ProcessEnv {
  const u = new URL(databaseUrl);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PGHOST: decodeURIComponent(u.hostname),
    PGPORT: u.port || '5432',
    PGUSER: decodeURIComponent(u.username),
    PGPASSWORD: decodeURIComponent(u.password),
    PGDATABASE: database ?? decodeURIComponent(u.pathname.replace(/^\//, '')),
  };
  const ssl = u.searchParams.get('sslmode');
  if (ssl) env.PGSSLMODE = ssl;
  return env;
}

export const databaseName = (databaseUrl: string) => decodeURIComponent(new URL(databaseUrl).pathname.replace(/^\//, ''));

/** A tar archive ends with two zero blocks; without them the stream was cut off. */
class TarTail {
  private tail = Buffer.alloc(0);
  push(chunk: Buffer): void {
    this.tail = Buffer.concat([this.tail, chunk]).subarray(-1024);
  }
  problem(): string | null {
    return this.tail.length === 1024 && this.tail.every((b) => b === 0) ? null : 'the archive from the engine ended before its end-of-archive blocks';
  }
}

/** Runs a child process that reads `input` on its stdin; rejects with its stderr when it fails. `signal` kills it. */
function feedProcess(cmd: string, args: string[], env: NodeJS.ProcessEnv, input: Readable, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'ignore', 'pipe'], signal, killSignal: 'SIGKILL' });
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      if (err.length < 16_384) err += d.toString();
    });
    child.on('error', reject);
    child.stdin!.on('error', () => undefined);
    input.on('error', (e) => {
      child.kill('SIGKILL');
      reject(e);
    });
    input.pipe(child.stdin!);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${err.trim().split('\n').slice(-3).join(' ').slice(0, 400)}`))));
  });
}

/** Backups into and restores from the restic repository. Data moves as streams: Docker API ⇄ restic, pg_dump → restic → psql. */
/**
 * The disk size of `workspaceId`'s volume: its own volume's on this engine (the size it was
 * given, an override included), else its tier's.
 */
async function workspaceDiskBytes(docker: Docker, workspaceId: string, prisma: PrismaClient): Promise<number> {
  try {
    const own = (await docker.getVolume(workspaceNames(workspaceId).volume).inspect()) as { Labels?: Record<string, string> };
    const bytes = Number(own.Labels?.[DISK_LABEL]);
    if (Number.isSafeInteger(bytes) && bytes > 0) return bytes;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
  const ws = await prisma.workspace.findUnique({ where: { id: workspaceId }, select: { tier: true } });
  const tier = ws ? TIERS[ws.tier as TierName] : undefined;
  if (!tier) throw ApplicationFailure.nonRetryable(`workspace ${workspaceId} has no known tier to size its restored volume`, 'InvalidTarget');
  return tier.diskGb * 1024 ** 3;
}

export function createBackupActivities({ prisma, fleet, logger, restic, databaseUrl, backup, pgDump = 'pg_dump', tools }: BackupDeps) {
  const log = logger.child({ component: 'backup' });

  async function endpointOf(serverId: string): Promise<EngineEndpoint> {
    const s = await prisma.workspaceServer.findUnique({ where: { id: serverId }, select: { ipAddress: true, dockerPort: true } });
    if (!s) throw ApplicationFailure.nonRetryable(`server ${serverId} does not exist`, 'ServerNotFoundError');
    return serverEndpoint(s);
  }

  /** A short-lived, never-started helper container on `volume` at the workspace mount: the Docker API unpacks archives through it. */
  async function helperOn(endpoint: EngineEndpoint, name: string, volume: string) {
    const docker = fleet.engine(endpoint);
    await docker.getContainer(name).remove({ force: true }).catch(() => undefined);
    return createToolContainer(docker, tools, toolContainerOptions(tools, { name, cmd: ['true'], binds: [`${volume}:${WORKSPACE_MOUNT}`] }));
  }

  return {
    async beginBackupRun(workflowId: string, trigger: string): Promise<void> {
      await prisma.backupRun.upsert({ where: { workflowId }, create: { workflowId, trigger }, update: {} });
    },

    /** Records how the run ended. A failed run is logged at error level with its reason: never a silent success. */
    async finishBackupRun(workflowId: string, r: { status: 'succeeded' | 'failed'; snapshots: SnapshotRecord[]; error?: string }): Promise<void> {
      const bytes = r.snapshots.reduce((n, s) => n + s.bytes, 0);
      await prisma.backupRun.update({
        where: { workflowId },
        data: { status: r.status, snapshots: r.snapshots as object[], bytes: BigInt(bytes), error: r.error ?? null, finishedAt: new Date() },
      });
      if (r.status === 'failed') log.error({ workflowId, snapshots: r.snapshots.length, reason: r.error }, 'backup run failed');
      else log.info({ workflowId, snapshots: r.snapshots.length, bytes }, 'backup run succeeded');
    },

    /** Opens the repository (creating it when nothing is there). A wrong password fails at once, clearly. */
    async ensureResticRepository(): Promise<'exists' | 'created'> {
      return resticCall(() => restic.ensureRepository());
    },

    /**
     * `pg_dump` streamed into `restic backup --stdin`; a dump that fails kills restic before it
     * may commit. A pg_dump that cannot start fails the activity (not the worker); a cancelled or
     * timed-out activity kills both processes (heartbeats carry the news even while pg_dump is silent).
     */
    async backupDatabase(run: string): Promise<SnapshotRecord> {
      const { cancellationSignal: signal } = Context.current();
      const beat = throttledHeartbeat();
      const database = databaseName(databaseUrl);
      let bytes = 0;
      const dump = spawn(pgDump, ['--no-owner', '--no-privileges', '--format=plain'], { env: pgEnv(databaseUrl), stdio: ['ignore', 'pipe', 'pipe'], signal, killSignal: 'SIGKILL' });
      let stderr = '';
      let startError: Error | undefined;
      dump.stderr!.on('data', (d: Buffer) => {
        if (stderr.length < 16_384) stderr += d.toString();
      });
      // Without this listener a missing binary (ENOENT) is an uncaught error that ends the worker process.
      const exited = new Promise<number>((resolve) => {
        dump.on('error', (err) => {
          startError ??= err;
          resolve(-1);
        });
        dump.on('close', (code) => resolve(code ?? -1));
      });
      // restic's stdin ends only once pg_dump has exited 0: a failed dump kills restic before it may commit.
      const backingUp = restic.backupStream(dump.stdout!, DATABASE_STDIN_NAME, snapshotTags({ kind: 'database', run, database }), {
        signal,
        onBytes: (n) => beat({ bytes: (bytes = n) }),
        complete: async () => {
          const code = await exited;
          if (startError) return `pg_dump failed: ${startError.message}`;
          return code === 0 ? null : `pg_dump exited ${code}: ${stderr.trim().slice(0, 300)}`;
        },
      });
      try {
        const summary = await whileBeating(backingUp, () => ({ bytes }));
        return { kind: 'database', snapshotId: summary.snapshotId, bytes: summary.bytes, database };
      } catch (err) {
        dump.kill('SIGKILL');
        if (startError && (startError as NodeJS.ErrnoException).code === 'ENOENT') {
          throw ApplicationFailure.nonRetryable(`pg_dump could not be started (${pgDump}: not found)`, 'PgDumpUnavailable');
        }
        throw asFailure(err);
      }
    },

    /** Every workspace whose volume exists on a server, running or stopped (or only those listed). */
    async listBackupTargets(workspaceIds?: string[]): Promise<BackupTarget[]> {
      const rows = await prisma.workspace.findMany({
        where: { status: { in: ['running', 'stopped'] }, serverId: { not: null }, ...(workspaceIds ? { id: { in: workspaceIds } } : {}) },
        select: { id: true, serverId: true },
        orderBy: { createdAt: 'asc' },
      });
      return rows.map((w) => ({ workspaceId: w.id, serverId: w.serverId! }));
    },

    /**
     * One workspace's volume as a tar stream from its server's Docker API into restic's stdin,
     * tagged with the workspace and server. The server is read afresh on each attempt (the
     * workspace may have moved). A deleted workspace is skipped; a cut-off stream is never
     * committed; a crashed earlier attempt's snapshot of this run is forgotten.
     */
    async backupWorkspaceVolume(run: string, workspaceId: string): Promise<SnapshotRecord | { skipped: string; workspaceId: string }> {
      const ws = await prisma.workspace.findUnique({ where: { id: workspaceId }, select: { serverId: true, status: true } });
      if (!ws || !ws.serverId || !['running', 'stopped'].includes(ws.status)) return { skipped: `workspace is ${ws?.status ?? 'gone'}`, workspaceId };
      const endpoint = await endpointOf(ws.serverId);
      const container = fleet.engine(endpoint).getContainer(workspaceNames(workspaceId).container);
      let running = false;
      try {
        running = Boolean(((await container.inspect()) as { State?: { Running?: boolean } }).State?.Running);
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) {
          const now = await prisma.workspace.findUnique({ where: { id: workspaceId }, select: { status: true, serverId: true } });
          if (!now || now.status === 'deleted' || now.serverId !== ws.serverId) return { skipped: 'workspace was deleted or moved during the run', workspaceId };
        }
        throw err;
      }
      // gVisor keeps written pages in its sentry until synced: flush them to the volume first.
      const t0 = Date.now();
      if (running) await execIn(container, ['sync']).catch(() => undefined);
      const t1 = Date.now();
      const beat = throttledHeartbeat();
      const { cancellationSignal: signal } = Context.current();
      const archive = (await container.getArchive({ path: WORKSPACE_MOUNT })) as unknown as Readable;
      // A cancelled or timed-out activity stops reading from the engine at once (restic is killed through the same signal).
      const cut = () => archive.destroy(new Error('the activity was cancelled'));
      signal.addEventListener('abort', cut, { once: true });
      const tail = new TarTail();
      archive.on('data', (c: Buffer) => tail.push(c));
      const tags = snapshotTags({ kind: 'workspace', run, workspaceId, serverId: ws.serverId });
      let bytes = 0;
      const summary = await resticCall(() =>
        whileBeating(
          restic.backupStream(archive, workspaceStdinName(workspaceId), tags, { signal, onBytes: (n) => beat({ bytes: (bytes = n) }), complete: () => tail.problem() }),
          () => ({ bytes }),
        ),
      ).finally(() => signal.removeEventListener('abort', cut));
      // A worker killed mid-stream leaves restic to commit what it had read: that snapshot is not this run's
      // backup. Only a retry can find one (each restic call pays the repository's key derivation, ~0.5 s).
      if (Context.current().info.attempt > 1) {
        const mine = await resticCall(() => restic.snapshots({ tags: [`run=${run}`, `workspace=${workspaceId}`] }));
        // (restic's summary gives the short id.)
        await resticCall(() => restic.forgetIds(mine.filter((s) => !s.id.startsWith(summary.snapshotId)).map((s) => s.id)));
      }
      log.info({ workspaceId, bytes: summary.bytes, syncMs: t1 - t0, streamMs: Date.now() - t1 }, 'workspace volume backed up');
      return { kind: 'workspace', snapshotId: summary.snapshotId, bytes: summary.bytes, workspaceId, serverId: ws.serverId };
    },

    async applyRetention(): Promise<{ kept: number; removed: number }> {
      return resticCall(() => restic.applyRetention(backup.retention));
    },

    async checkRepository(): Promise<void> {
      await resticCall(() => restic.check(backup.checkSubset));
    },

    async listSnapshots(): Promise<SnapshotInfo[]> {
      const all = await resticCall(() => restic.snapshots({ tags: ['podex'] }));
      return all.map((s) => ({ id: s.id, time: s.time, ...parseSnapshotTags(s.tags) }));
    },

    async findSnapshot(snapshotId: string): Promise<SnapshotInfo> {
      const s = await resticCall(() => restic.snapshot(snapshotId));
      if (!s) throw ApplicationFailure.nonRetryable(`snapshot ${snapshotId} is not in the repository`, 'SnapshotNotFound');
      return { id: s.id, time: s.time, ...parseSnapshotTags(s.tags) };
    },

    /**
     * Unpacks a workspace snapshot into `volume` (created if missing, emptied first) on the
     * engine, through a never-started helper container: restic dump → Docker putArchive.
     */
    async restoreSnapshotToVolume(endpoint: EngineEndpoint, snapshotId: string, sourceWorkspaceId: string, volume: string, _image: string, labels: Record<string, string>): Promise<{ bytes: number }> {
      const docker = fleet.engine(endpoint);
      const { cancellationSignal: signal } = Context.current();
      // A restored volume is limited as the workspace's own is (lib/volume-disk.ts): the same size, on a disk of its own.
      const bytes = await workspaceDiskBytes(docker, sourceWorkspaceId, prisma);
      await docker.createVolume({ Name: volume, Labels: { 'podex.managed': 'true', ...labels, [DISK_LABEL]: String(bytes) } });
      const v = (await docker.getVolume(volume).inspect()) as { Labels?: Record<string, string> };
      try {
        await attachVolumeDisk(docker, tools, volume, Number(v.Labels?.[DISK_LABEL] ?? bytes));
      } catch (err) {
        if (err instanceof VolumeDiskUnsupportedError) throw ApplicationFailure.nonRetryable(err.message, err.name);
        throw err;
      }
      const helperName = `${volume}-restore-helper`;
      const empty = await runTool(docker, tools, { name: `${helperName}-empty`, cmd: ['sh', '-c', `cd ${WORKSPACE_MOUNT} && ${EMPTY_HERE}`], binds: [`${volume}:${WORKSPACE_MOUNT}`], capAdd: WRITER_CAPS }, signal);
      if (empty.code !== 0) throw new Error(`could not empty ${volume}: ${empty.out.slice(0, 300)}`);
      const helper = await helperOn(endpoint, helperName, volume);
      const beat = throttledHeartbeat();
      try {
        const { stream, done, child } = restic.dump(snapshotId, workspaceStdinName(sourceWorkspaceId), signal);
        let bytes = 0;
        stream.on('data', (c: Buffer) => {
          bytes += c.length;
          beat({ bytes });
        });
        try {
          // The helper's root is read-only: the archive goes to the mount point, its top folder ("workspace/") taken off.
          await whileBeating(Promise.all([helper.putArchive(rerooted(stream, WORKSPACE_MOUNT), { path: WORKSPACE_MOUNT }), resticCall(() => done)]), () => ({ bytes }));
        } catch (err) {
          child.kill('SIGKILL');
          throw err;
        }
        return { bytes };
      } finally {
        await helper.remove({ force: true }).catch(() => undefined);
      }
    },

    /** Makes the workspace's own volume hold exactly what `from` holds (a local copy on the server by a tools-image helper, runc, no network). */
    async replaceVolumeContents(endpoint: EngineEndpoint, workspaceId: string, from: string, _image?: string): Promise<void> {
      const live = workspaceNames(workspaceId).volume;
      const r = await runTool(
        fleet.engine(endpoint),
        tools,
        { name: `podex-restore-swap-${workspaceId}`, cmd: ['sh', '-c', `cd /live && ${EMPTY_HERE} && cp -a ${WORKSPACE_MOUNT}/. /live/`], binds: [`${from}:${WORKSPACE_MOUNT}:ro`, `${live}:/live`], capAdd: WRITER_CAPS },
        Context.current().cancellationSignal,
      );
      if (r.code !== 0) throw new Error(`could not copy the restored data into ${live}: ${r.out.slice(0, 300)}`);
    },

    /** Removes a volume and releases its disk, if it has one; a missing volume is already removed. */
    async removeVolumeNamed(endpoint: EngineEndpoint, name: string): Promise<void> {
      await removeVolumeWithDisk(fleet.engine(endpoint), tools, name);
    },

    /**
     * Restores a database snapshot into a new database `target` on the same PostgreSQL server.
     * The database is marked with the workflow run that made it, so a retry replaces its own
     * half-restored database but never touches anybody else's.
     */
    async restoreDatabase(snapshotId: string, target: string, madeBy: string): Promise<{ tables: number }> {
      if (!DATABASE_NAME.test(target)) throw ApplicationFailure.nonRetryable(`targetDatabase ${target} is not a plain lower-case name`, 'InvalidTarget');
      if (target === databaseName(databaseUrl)) throw ApplicationFailure.nonRetryable('targetDatabase may not be the live database', 'InvalidTarget');
      const marker = `podex-restore:${madeBy}`;
      const [existing] = await prisma.$queryRaw<{ comment: string | null }[]>`
        SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = ${target}`;
      if (existing && existing.comment !== marker) throw ApplicationFailure.nonRetryable(`database ${target} already exists`, 'TargetExists');
      if (existing) await prisma.$executeRawUnsafe(`DROP DATABASE "${target}" WITH (FORCE)`);
      await prisma.$executeRawUnsafe(`CREATE DATABASE "${target}"`);
      await prisma.$executeRawUnsafe(`COMMENT ON DATABASE "${target}" IS '${marker.replace(/'/g, "''")}'`);
      const { cancellationSignal: signal } = Context.current();
      const { stream, done, child } = restic.dump(snapshotId, DATABASE_STDIN_NAME, signal);
      try {
        await whileBeating(Promise.all([feedProcess('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction'], pgEnv(databaseUrl, target), stream, signal), resticCall(() => done)]));
      } catch (err) {
        child.kill('SIGKILL');
        throw err;
      }
      const tables = await countTables(databaseUrl, target);
      log.info({ snapshotId, target, tables }, 'database restored');
      return { tables };
    },
  };
}

async function countTables(databaseUrl: string, target: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('psql', ['-X', '-At', '-c', "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"], { env: pgEnv(databaseUrl, target) });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Number(out.trim())) : reject(new Error(`psql exited ${code}`))));
  });
}
