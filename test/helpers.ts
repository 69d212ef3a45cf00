import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { config } from '../lib/config';
import { DockerFleet, parseEndpoints, type EngineEndpoint } from '../lib/docker-fleet';

/** The local fleet's engines (deploy/local/stack.sh writes them to .stack/env). */
export function localEngines(): EngineEndpoint[] {
  const engines = parseEndpoints(process.env.PODEX_LOCAL_ENGINES);
  if (engines.length < 2) throw new Error('PODEX_LOCAL_ENGINES must list the local fleet (run: npm run stack:up)');
  return engines;
}

export function testFleet(): DockerFleet {
  const c = config();
  return new DockerFleet({ caFile: c.DOCKER_TLS_CA_FILE, certFile: c.DOCKER_TLS_CERT_FILE, keyFile: c.DOCKER_TLS_KEY_FILE });
}

/** A short unique suffix for names a test creates (containers, networks, task queues). */
export function uniq(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export { demuxStreams as demuxLogs, execIn } from '../lib/docker-exec';

/** Files the host's loop devices are backed by (the local engines run on this host). */
export function loopBackingFiles(): string[] {
  return fs
    .readdirSync('/sys/block')
    .filter((d) => d.startsWith('loop'))
    .map((d) => {
      try {
        return fs.readFileSync(`/sys/block/${d}/loop/backing_file`, 'utf8').trim();
      } catch {
        return '';
      }
    })
    .filter(Boolean);
}

/**
 * Engine-3 is the one tests stop and start; two suites running at once take turns through
 * this lock (a directory, created atomically; a holder that died leaves it to be taken).
 */
export async function withEngine3<T>(fn: () => Promise<T>): Promise<T> {
  const dir = path.join(__dirname, '..', '.stack', 'locks', 'engine-3');
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  for (;;) {
    try {
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'pid'), String(process.pid));
      break;
    } catch {
      const holder = Number(fs.readFileSync(path.join(dir, 'pid'), { encoding: 'utf8', flag: 'a+' }) || 0);
      if (holder && !pidAlive(holder)) fs.rmSync(dir, { recursive: true, force: true });
      else await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The real worker process (workers/main.ts) on a test's task queue; resolves once it polls.
 * Node itself runs it (tsx as a loader, not the tsx CLI, whose own child would outlive a SIGKILL).
 */
export async function spawnWorker(taskQueue: string, env: Record<string, string> = {}): Promise<ChildProcess> {
  const root = path.join(__dirname, '..');
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'workers', 'main.ts')], {
    cwd: root,
    env: { ...process.env, TEMPORAL_TASK_QUEUE: taskQueue, ENSURE_SCHEDULES: 'false', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('"msg":"worker started"')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`worker exited with ${code}`)));
  });
  child.stdout!.resume();
  return child;
}

/**
 * Terminates every workflow still open on a test's task queue (runs its schedules started and
 * children included): a test that fails half-way must not leave workflows retrying forever
 * against engines, rows and a worker that are gone. Visibility trails the server by a few
 * milliseconds, so it lists again until a round finds nothing it has not terminated already.
 */
export async function terminateOpenWorkflows(client: Client, taskQueue: string, reason = 'test cleanup'): Promise<string[]> {
  const terminated = new Set<string>();
  for (let round = 0; round < 20; round++) {
    let fresh = 0;
    for await (const wf of client.workflow.list({ query: `TaskQueue = '${taskQueue}' AND ExecutionStatus = 'Running'` })) {
      const key = `${wf.type} ${wf.workflowId} ${wf.runId}`;
      if (terminated.has(key)) continue;
      fresh++;
      try {
        await client.workflow.getHandle(wf.workflowId, wf.runId).terminate(reason);
      } catch (err) {
        // Closed meanwhile, by itself or with its parent.
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
      terminated.add(key);
    }
    if (fresh === 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  if (terminated.size) process.stderr.write(`terminated ${terminated.size} workflow(s) left open on ${taskQueue}: ${[...terminated].map((k) => k.split(' ').slice(0, 2).join(' ')).join(', ')}\n`);
  return [...terminated];
}

/** Every file under /workspace with its SHA-256, sorted: what must be identical after a move. */
export const WORKSPACE_SUMS = 'cd /workspace && find . -type f | sort | xargs sha256sum';

/** Whether a process with this pid is running (0 or less: none). */
export function pidAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
