import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import path from 'node:path';
import type { Config } from '../domain/config';
import { BACKUP_HOST, classifyResticError, redactRepository, forgetArgs, resticMessage, type ResticErrorKind, type RetentionPolicy } from '../domain/backup';

/** Where the repository is and how to open it. The password stays in its file: restic reads it there. */
export interface ResticSettings {
  repository: string;
  passwordFile?: string;
  cacheDir?: string;
  /** The restic binary (default: `restic` on PATH). */
  bin?: string;
}

export class ResticError extends Error {
  override name = 'ResticError';
  constructor(
    readonly kind: ResticErrorKind,
    message: string,
  ) {
    super(message);
  }
}

export interface Snapshot {
  id: string;
  short_id: string;
  time: string;
  paths: string[];
  tags?: string[];
  hostname: string;
}

export interface BackupSummary {
  snapshotId: string;
  bytes: number;
  dataAdded: number;
}

/** restic, run as a child process. Every method throws ResticError with a kind and a message safe to show. */
export class Restic {
  constructor(readonly settings: ResticSettings) {}

  /** The repository as it may appear in logs and API answers. */
  get where(): string {
    return redactRepository(this.settings.repository);
  }

  private env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, RESTIC_REPOSITORY: this.settings.repository, RESTIC_PROGRESS_FPS: '0.2' };
    // Only the file: a password in the environment would outrank it and could leak into a child's view.
    delete env.RESTIC_PASSWORD;
    delete env.RESTIC_PASSWORD_COMMAND;
    delete env.RESTIC_PASSWORD_FILE;
    if (this.settings.passwordFile) env.RESTIC_PASSWORD_FILE = this.settings.passwordFile;
    if (this.settings.cacheDir) env.RESTIC_CACHE_DIR = this.settings.cacheDir;
    return env;
  }

  private preflight(): void {
    const pw = this.settings.passwordFile;
    if (!pw) throw new ResticError('WrongPassword', 'RESTIC_PASSWORD_FILE is not set: backups need the repository password in a file');
    if (!fs.existsSync(pw)) throw new ResticError('WrongPassword', `RESTIC_PASSWORD_FILE ${pw} does not exist`);
  }

  /**
   * Starts restic; the caller owns stdin and stdout. `done` resolves with stdout (if not piped
   * elsewhere) or rejects with a ResticError. When `signal` aborts (the activity was cancelled or
   * timed out) restic is killed at once, so a retry never runs beside it.
   */
  spawn(args: string[], opts: { collectStdout?: boolean; signal?: AbortSignal } = {}): { child: ChildProcess; done: Promise<string> } {
    this.preflight();
    const child = spawn(this.settings.bin ?? 'restic', args, {
      env: this.env(),
      stdio: ['pipe', 'pipe', 'pipe'],
      signal: opts.signal,
      killSignal: 'SIGKILL',
    });
    let out = '';
    let err = '';
    if (opts.collectStdout !== false) child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => {
      if (err.length < 64 * 1024) err += d.toString();
    });
    const done = new Promise<string>((resolve, reject) => {
      child.on('error', (e) => reject(new ResticError('ResticFailed', e.name === 'AbortError' ? `restic ${args[0]} was stopped: its activity was cancelled` : `restic could not be started: ${e.message}`)));
      child.on('close', (code, signal) => {
        if (code === 0) return resolve(out);
        const kind = signal ? 'ResticFailed' : classifyResticError(err);
        const why = signal ? `restic was stopped (${signal})` : resticMessage(err, this.settings.repository);
        reject(new ResticError(kind, `restic ${args[0]} on ${this.where}: ${why}`));
      });
    });
    return { child, done };
  }

  async run(args: string[], signal?: AbortSignal): Promise<string> {
    const { child, done } = this.spawn(args, { signal });
    child.stdin!.end();
    return done;
  }

  /** Opens the repository, creating it when nothing is there yet. A wrong password is an error, never a reason to create. */
  async ensureRepository(): Promise<'exists' | 'created'> {
    try {
      await this.run(['cat', 'config']);
      return 'exists';
    } catch (err) {
      if (!(err instanceof ResticError) || err.kind !== 'NoRepository') throw err;
    }
    await this.run(['init']);
    return 'created';
  }

  /**
   * Backs up one stream as a single file in a snapshot. The stream is checked before restic
   * may commit: `complete` is asked once the input has ended, and a `false` (or any input
   * error) kills restic first, so a cut-off stream never becomes a snapshot.
   */
  async backupStream(
    input: Readable,
    filename: string,
    tags: string[],
    opts: { time?: string; complete?: () => string | null | Promise<string | null>; onBytes?: (bytes: number) => void; signal?: AbortSignal } = {},
  ): Promise<BackupSummary> {
    const args = ['backup', '--json', '--host', BACKUP_HOST, '--stdin', '--stdin-filename', filename, ...tags.flatMap((t) => ['--tag', t])];
    if (opts.time) args.push('--time', opts.time);
    const { child, done } = this.spawn(args, { signal: opts.signal });
    let bytes = 0;
    let failure: Error | undefined;
    const abort = (e: Error) => {
      failure ??= e;
      child.kill('SIGKILL');
    };
    // Registered before any piping: on an input error restic dies before its stdin closes.
    input.on('error', abort);
    input.on('aborted', () => abort(new Error('the input stream was cut off')));
    child.stdin!.on('error', (e) => abort(e));
    input.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      opts.onBytes?.(bytes);
      if (!child.stdin!.write(chunk)) {
        input.pause();
        child.stdin!.once('drain', () => input.resume());
      }
    });
    input.on('end', () => {
      Promise.resolve(opts.complete?.() ?? null).then(
        (problem) => (problem ? abort(new Error(problem)) : child.stdin!.end()),
        (e: Error) => abort(e),
      );
    });
    let stdout: string;
    try {
      stdout = await done;
    } catch (err) {
      input.destroy();
      throw failure ? new ResticError('ResticFailed', `backup of ${filename} abandoned: ${failure.message}`) : err;
    }
    if (failure) throw new ResticError('ResticFailed', `backup of ${filename} abandoned: ${failure.message}`);
    const summary = stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { message_type: string; snapshot_id?: string; total_bytes_processed?: number; data_added?: number })
      .find((m) => m.message_type === 'summary');
    if (!summary?.snapshot_id) throw new ResticError('ResticFailed', `restic backup of ${filename} printed no summary`);
    return { snapshotId: summary.snapshot_id, bytes: summary.total_bytes_processed ?? bytes, dataAdded: summary.data_added ?? 0 };
  }

  async snapshots(filter: { tags?: string[]; ids?: string[] } = {}): Promise<Snapshot[]> {
    const args = ['snapshots', '--json'];
    if (filter.tags?.length) args.push('--tag', filter.tags.join(','));
    const out = await this.run([...args, ...(filter.ids ?? [])]);
    return (JSON.parse(out || '[]') as Snapshot[] | null) ?? [];
  }

  /** One snapshot by (short or full) id, or undefined. */
  async snapshot(id: string): Promise<Snapshot | undefined> {
    try {
      return (await this.snapshots({ ids: [id] }))[0];
    } catch (err) {
      if (err instanceof ResticError && err.kind === 'SnapshotNotFound') return undefined;
      throw err;
    }
  }

  async forgetIds(ids: string[]): Promise<void> {
    if (ids.length) await this.run(['forget', ...ids]);
  }

  /** Applies the retention policy to every group (host + path) and prunes what no snapshot needs. */
  async applyRetention(policy: RetentionPolicy, tags: string[] = ['podex']): Promise<{ kept: number; removed: number }> {
    const out = await this.run(['forget', '--json', '--tag', tags.join(','), ...forgetArgs(policy)]);
    const groups = (JSON.parse(out || '[]') as { keep?: unknown[]; remove?: unknown[] }[] | null) ?? [];
    const kept = groups.reduce((n, g) => n + (g.keep?.length ?? 0), 0);
    const removed = groups.reduce((n, g) => n + (g.remove?.length ?? 0), 0);
    if (removed > 0) await this.run(['prune']);
    return { kept, removed };
  }

  /** Verifies the repository's structure and reads `subset` of its data back. */
  async check(subset: string): Promise<void> {
    await this.run(['check', `--read-data-subset=${subset}`]);
  }

  /** Streams one file of a snapshot to the returned stream (restic dump). */
  dump(snapshotId: string, filename: string, signal?: AbortSignal): { stream: Readable; done: Promise<string>; child: ChildProcess } {
    const { child, done } = this.spawn(['dump', snapshotId, `/${filename}`], { collectStdout: false, signal });
    child.stdin!.end();
    return { stream: child.stdout!, done, child };
  }
}

/** The repository the configuration names: RESTIC_REPOSITORY, else a folder under DATA_DIR. */
export function resticFromConfig(c: Config): Restic {
  return new Restic({ repository: c.RESTIC_REPOSITORY ?? path.join(c.DATA_DIR, 'restic'), passwordFile: c.RESTIC_PASSWORD_FILE, cacheDir: c.RESTIC_CACHE_DIR });
}
