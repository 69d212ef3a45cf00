import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client as PgClient } from 'pg';
import { pidAlive } from './helpers';
import { startPrivateTemporal } from './private-temporal';
import { freePort } from './proxy';

/**
 * A stack of the test file's own — PostgreSQL, Redis and a Temporal dev server, each its own
 * process on its own 127.0.0.1 port with its data in one temporary folder — for tests that stop,
 * pause and restart them. The shared stack other suites run against is never touched.
 *
 * Every process is started through `setpriv --pdeathsig SIGKILL`, so it dies with the test
 * process even when that one is killed before its clean-up runs; a folder left by such a run is
 * removed by the next start.
 */

const ROOT = path.join(__dirname, '..');
const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';
const DIR_PREFIX = 'podex-stack-';
const run = promisify(execFile);

export interface PrivateStack {
  databaseUrl: string;
  redisUrl: string;
  /** The private Temporal server's address, or the shared one's when started with `temporal: false`. */
  temporalAddress: string;
  /** Stop is a fast shutdown (sessions are cut); start brings the same cluster back on the same port. */
  postgres: { stop(): Promise<void>; start(): Promise<void> };
  /**
   * Stop shuts the server down (connections refused, data gone: no persistence); pause freezes it
   * (SIGSTOP: connections are accepted by the kernel and then hang, as a blackholed server), resume thaws it.
   */
  redis: { stop(): Promise<void>; start(): Promise<void>; pause(): Promise<void>; resume(): Promise<void> };
  /** Null with `temporal: false`. Stop keeps the server's database; start brings it back on the same port. */
  temporal: { stop(): Promise<void>; start(): Promise<void> } | null;
  /** Kills every process of the stack and removes its folder. */
  close(): Promise<void>;
}

export interface PrivateApi {
  url: string;
  /** The Temporal task queue the API starts workflows on (no worker polls it unless the test runs one). */
  taskQueue: string;
  /** Stops the API (SIGTERM, then SIGKILL after a grace period). */
  close(): Promise<void>;
  /** Everything the API wrote to stdout and stderr (pino lines). */
  logs(): string;
}

/** Processes and folders still alive, killed and removed when the test process exits however it exits. */
const live = new Set<ChildProcess>();
const dirs = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const c of live) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });
}

/** Removes folders of earlier runs whose test process is gone (their processes died with it). */
function sweepStaleDirs(): void {
  for (const name of fs.readdirSync(os.tmpdir())) {
    if (!name.startsWith(DIR_PREFIX)) continue;
    const dir = path.join(os.tmpdir(), name);
    if (!pidAlive(Number(fs.readFileSync(path.join(dir, 'owner.pid'), { encoding: 'utf8', flag: 'a+' }) || 0))) fs.rmSync(dir, { recursive: true, force: true });
  }
}

interface Owner {
  uid: number;
  gid: number;
}

/** PostgreSQL refuses to run as root: as root, its processes run as the postgres user (as deploy/local/stack.sh does). */
function postgresOwner(): Owner | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root, but there is no postgres user to run PostgreSQL as');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** Spawns `cmd` so that it dies with this process; its output is kept (the last 256 KiB) for failure messages. */
function spawnTied(cmd: string, args: string[], opts: { owner?: Owner; env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
  const child = spawn('setpriv', ['--pdeathsig', 'SIGKILL', cmd, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    uid: opts.owner?.uid,
    gid: opts.owner?.gid,
    env: opts.env ?? process.env,
    cwd: opts.cwd,
  });
  let out = '';
  const keep = (b: Buffer) => {
    out += b.toString('utf8');
    if (out.length > 256 * 1024) out = out.slice(-256 * 1024);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  live.add(child);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  void exited.then(() => live.delete(child));
  return { child, exited, output: () => out };
}

/** Signals the process and waits for it to exit; SIGKILL if it has not after `graceMs`. */
async function terminate(p: { child: ChildProcess; exited: Promise<void> } | undefined, signal: NodeJS.Signals, graceMs = 10_000): Promise<void> {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.exited, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
  clearTimeout(timer);
  if (p.child.exitCode === null && p.child.signalCode === null) {
    p.child.kill('SIGKILL');
    await p.exited;
  }
}

/** Retries `check` every 50 ms until it resolves; fails naming `what` (with the process's output) after `ms`. */
async function waitUntil(what: string, check: () => Promise<unknown>, proc: { child: ChildProcess; output: () => string }, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`${what} exited while starting:\n${proc.output()}`);
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > end) throw new Error(`${what} did not come up within ${ms} ms (${(err as Error).message}):\n${proc.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** One request/answer on a fresh connection with a deadline (Redis PING, no client library state to leak). */
function redisPing(port: number, timeoutMs = 1_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => s.destroy(new Error('no PONG')), timeoutMs);
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (b) => {
      clearTimeout(timer);
      s.destroy();
      if (b.toString().startsWith('+PONG')) resolve();
      else reject(new Error(`unexpected answer ${b.toString().trim()}`));
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function pgQuery(url: string, sql: string): Promise<void> {
  const c = new PgClient({ connectionString: url, connectionTimeoutMillis: 1_000 });
  try {
    await c.connect();
    await c.query(sql);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/**
 * Starts a private PostgreSQL (a fresh cluster, migrated), Redis and — unless `temporal: false` —
 * Temporal dev server, in parallel. Call close() in afterAll.
 */
export async function startPrivateStack(opts: { temporal?: boolean } = {}): Promise<PrivateStack> {
  installExitHook();
  sweepStaleDirs();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), DIR_PREFIX));
  dirs.add(dir);
  fs.writeFileSync(path.join(dir, 'owner.pid'), String(process.pid));
  const pgOwner = postgresOwner();
  const pgDir = path.join(dir, 'postgres');
  const redisDir = path.join(dir, 'redis');
  fs.mkdirSync(pgDir);
  fs.mkdirSync(redisDir);
  // mkdtemp makes the folder 0700: the postgres user must reach its own sub-folder.
  if (pgOwner) {
    fs.chmodSync(dir, 0o711);
    fs.chownSync(pgDir, pgOwner.uid, pgOwner.gid);
  }
  const [pgPort, redisPort] = [await freePort(), await freePort()];
  const databaseUrl = `postgresql://podex:podex@127.0.0.1:${pgPort}/podex`;
  const redisUrl = `redis://127.0.0.1:${redisPort}/0`;

  let pg: ReturnType<typeof spawnTied> | undefined;
  const pgStart = async () => {
    if (pg && pg.child.exitCode === null && pg.child.signalCode === null) return;
    pg = spawnTied(
      path.join(PG_BIN, 'postgres'),
      ['-D', path.join(pgDir, 'data'), '-h', '127.0.0.1', '-p', String(pgPort), '-k', pgDir,
        // A throwaway cluster: durability buys nothing here, start and write speed does.
        '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=100', '-c', 'shared_buffers=16MB'],
      { owner: pgOwner },
    );
    await waitUntil('private PostgreSQL', () => pgQuery(databaseUrl.replace(/\/podex$/, '/postgres'), 'SELECT 1'), pg);
  };
  const pgUp = async () => {
    await run(path.join(PG_BIN, 'initdb'), ['-D', path.join(pgDir, 'data'), '-U', 'podex', '-A', 'trust', '-E', 'UTF8', '--no-sync', '--no-instructions'], {
      ...(pgOwner ? { uid: pgOwner.uid, gid: pgOwner.gid } : {}),
      cwd: pgDir,
    });
    await pgStart();
    await pgQuery(databaseUrl.replace(/\/podex$/, '/postgres'), 'CREATE DATABASE podex');
    await run('node', [path.join(ROOT, 'prisma', 'cli.cjs'), 'migrate', 'deploy'], { cwd: ROOT, env: { ...process.env, DATABASE_URL: databaseUrl } });
  };

  let redis: ReturnType<typeof spawnTied> | undefined;
  let redisPaused = false;
  const redisStart = async () => {
    if (redis && redis.child.exitCode === null && redis.child.signalCode === null) return;
    redis = spawnTied('redis-server', ['--bind', '127.0.0.1', '--port', String(redisPort), '--dir', redisDir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning']);
    redisPaused = false;
    await waitUntil('private Redis', () => redisPing(redisPort), redis);
  };

  const temporalWanted = opts.temporal ?? true;
  const started = await Promise.allSettled([pgUp(), redisStart(), temporalWanted ? startPrivateTemporal({ parentDir: dir }) : Promise.resolve(null)]);
  const failed = started.find((r) => r.status === 'rejected');
  const temporal = started[2].status === 'fulfilled' ? started[2].value : null;
  if (failed) {
    await Promise.allSettled([terminate(pg, 'SIGKILL'), terminate(redis, 'SIGKILL'), temporal?.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
    dirs.delete(dir);
    throw (failed as PromiseRejectedResult).reason;
  }

  let closed = false;
  return {
    databaseUrl,
    redisUrl,
    temporalAddress: temporal?.address ?? process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
    postgres: {
      // SIGINT is PostgreSQL's fast shutdown: sessions are terminated, as when an operator stops it.
      stop: () => terminate(pg, 'SIGINT'),
      start: pgStart,
    },
    redis: {
      async stop() {
        if (redisPaused) redis?.child.kill('SIGCONT');
        redisPaused = false;
        await terminate(redis, 'SIGTERM');
      },
      start: redisStart,
      async pause() {
        if (!redis || redis.child.exitCode !== null) throw new Error('private Redis is not running');
        redis.child.kill('SIGSTOP');
        redisPaused = true;
      },
      async resume() {
        redis?.child.kill('SIGCONT');
        redisPaused = false;
        await waitUntil('private Redis', () => redisPing(redisPort), redis!);
      },
    },
    temporal: temporal ? { stop: temporal.halt, start: temporal.start } : null,
    async close() {
      if (closed) return;
      closed = true;
      if (redisPaused) redis?.child.kill('SIGCONT');
      await Promise.allSettled([terminate(pg, 'SIGINT', 5_000), terminate(redis, 'SIGTERM', 5_000), temporal?.stop()]);
      fs.rmSync(dir, { recursive: true, force: true });
      dirs.delete(dir);
    },
  };
}

/** KEY=value lines of one of the stack's env files (absent: none). */
function envFile(file: string): Record<string, string> {
  if (!fs.existsSync(file)) return {};
  const out: Record<string, string> = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

/**
 * The real API process (`node --import tsx api/main.ts`) on the private stack: the local stack's
 * settings (.stack/env, .stack/secrets.env) with the stack's addresses, a port and a task queue of
 * its own, rate limits raised out of the way, then `env`. Resolves once /healthz answers.
 */
export async function startPrivateApi(stack: PrivateStack, env: Record<string, string> = {}): Promise<PrivateApi> {
  installExitHook();
  const port = await freePort();
  const taskQueue = `private-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const childEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    ...envFile(path.join(ROOT, '.stack', 'env')),
    ...envFile(path.join(ROOT, '.stack', 'secrets.env')),
    // The test process's keys (test/setup-env.ts puts the fixed test key first), so its own client decodes.
    ...(process.env.TEMPORAL_PAYLOAD_KEYS ? { TEMPORAL_PAYLOAD_KEYS: process.env.TEMPORAL_PAYLOAD_KEYS } : {}),
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    API_HOST: '127.0.0.1',
    PORT: String(port),
    METRICS_ADDRESS: '',
    DATABASE_URL: stack.databaseUrl,
    REDIS_URL: stack.redisUrl,
    TEMPORAL_ADDRESS: stack.temporalAddress,
    TEMPORAL_TASK_QUEUE: taskQueue,
    RATE_LIMIT_PER_MINUTE: '100000',
    RATE_LIMIT_PER_USER_PER_MINUTE: '100000',
    RATE_LIMIT_INTERNAL_PER_MINUTE: '100000',
    ...env,
  };
  const api = spawnTied(process.execPath, ['--import', 'tsx', path.join(ROOT, 'api', 'main.ts')], { env: childEnv, cwd: ROOT });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitUntil(
      'private API',
      async () => {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1_000) });
        if (res.status !== 200) throw new Error(`/healthz answered ${res.status}`);
      },
      api,
      60_000,
    );
  } catch (err) {
    await terminate(api, 'SIGKILL');
    throw err;
  }
  return {
    url,
    taskQueue,
    close: () => terminate(api, 'SIGTERM', 5_000),
    logs: api.output,
  };
}
