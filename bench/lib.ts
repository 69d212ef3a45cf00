/** What the benchmarks share: the real worker and API processes, percentiles, HTTP calls. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';
import type Docker from 'dockerode';
import { containerSpec, networkSpec, READY_PROBE, workspaceLabels, workspaceNames } from '../domain/container-spec';
import { TIERS } from '../domain/tiers';
import { config, type Config } from '../lib/config';
import { execIn } from '../lib/docker-exec';
import { DockerFleet } from '../lib/docker-fleet';
import { toolsImage } from '../lib/tools-image';
import { removeVolumeWithDisk } from '../lib/volume-disk';

const ROOT = path.join(__dirname, '..');

/** Starts `script` (relative to the repository) with extra environment; resolves once `ready()` says so. */
async function spawnUntil(script: string, env: Record<string, string>, ready: (child: ChildProcess) => Promise<void>): Promise<ChildProcess> {
  // Node itself runs the script, with tsx as a loader: a signal reaches the process that does the work.
  // BENCH_PROFILE_DIR: each process writes a V8 CPU profile there when it exits.
  const profile = process.env.BENCH_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', path.join(ROOT, script)], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`))));
  await Promise.race([ready(child), exited]);
  return child;
}

/** The real worker process (workers/main.ts) on its own task queue, without schedules. */
export function startWorker(taskQueue: string, env: Record<string, string> = {}): Promise<ChildProcess> {
  return spawnUntil('workers/main.ts', { TEMPORAL_TASK_QUEUE: taskQueue, ENSURE_SCHEDULES: 'false', LOG_LEVEL: 'info', ...env }, (child) => {
    return new Promise<void>((resolve) => {
      let out = '';
      const onData = (d: Buffer) => {
        out += d.toString();
        if (out.includes('"msg":"worker started"')) {
          child.stdout!.off('data', onData);
          // BENCH_VERBOSE=1: the worker's log goes to stderr (the last stdout line stays the result).
          if (process.env.BENCH_VERBOSE === '1') child.stdout!.pipe(process.stderr);
          else child.stdout!.resume();
          resolve();
        }
      };
      child.stdout!.on('data', onData);
    });
  });
}

/** The real API process (api/main.ts) on `port`; resolves once /readyz answers 200. */
export function startApi(port: number, env: Record<string, string> = {}): Promise<ChildProcess> {
  return spawnUntil('api/main.ts', { PORT: String(port), NODE_ENV: 'production', RATE_LIMIT_PER_MINUTE: '1000000000', RATE_LIMIT_PER_USER_PER_MINUTE: '1000000000', RATE_LIMIT_INTERNAL_PER_MINUTE: '1000000000', ...env }, async (child) => {
    child.stdout!.resume();
    for (let i = 0; ; i++) {
      if (await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok).catch(() => false)) return;
      if (i > 300) throw new Error('API did not become ready');
      await new Promise((r) => setTimeout(r, 200));
    }
  });
}

export function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** The p-th percentile (0–100) by nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

/** JSON calls against the API with a bearer token. */
export function apiClient(base: string, token: string) {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are read field by field
  return async function call(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
    const res = await fetch(`${base}${p}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
}

/** The fleet's engines with the orchestrator's TLS material and a timeout fit for long copies. */
export function benchFleet(c: Config, timeoutMs = 600_000): DockerFleet {
  return new DockerFleet({ caFile: c.DOCKER_TLS_CA_FILE, certFile: c.DOCKER_TLS_CERT_FILE, keyFile: c.DOCKER_TLS_KEY_FILE }, timeoutMs);
}

/** Removes a benchmark's leftovers from an engine: containers, networks and volumes carrying any of `labels`. */
export async function removeLabelled(docker: Docker, labels: string[]): Promise<void> {
  for (const label of labels) {
    const filters = JSON.stringify({ label: [label] });
    await Promise.all((await docker.listContainers({ all: true, filters })).map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
    await Promise.all((await docker.listNetworks({ filters })).map((n) => docker.getNetwork(n.Id).remove().catch(() => undefined)));
    // Our workspaces' volumes each have a disk (lib/volume-disk.ts): a plain remove would leave it mounted.
    const tools = toolsImage(config());
    await Promise.all(((await docker.listVolumes({ filters })).Volumes ?? []).map((v) => removeVolumeWithDisk(docker, tools, v.Name).catch(() => undefined)));
  }
}

/** Runs `task` over `items` with `n` concurrent loops; returns the seconds taken. */
export async function pool<T>(items: T[], n: number, task: (item: T, i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        await task(items[i], i);
      }
    }),
  );
  return (performance.now() - t0) / 1000;
}

/**
 * A baseline workspace made with dockerode alone: the same network and hardened gVisor
 * container as ours (free tier), on a new volume or on `volume` if given, created and started.
 */
export async function rawProvision(docker: Docker, name: string, image: string, label: string, volume?: string): Promise<Docker.Container> {
  const labels = { ...workspaceLabels(name, 'bench-raw', TIERS.free.name), [label]: '1' };
  const names = workspaceNames(name);
  await docker.createNetwork(networkSpec(name, labels));
  if (!volume) await docker.createVolume({ Name: names.volume, Labels: labels });
  const spec = containerSpec({ workspaceId: name, ownerId: 'bench-raw', tier: TIERS.free, image, runtime: 'runsc', diskLimitSupported: false, publishAddress: '127.0.0.1' });
  const mounts = volume ? [{ Type: 'volume' as const, Source: volume, Target: spec.HostConfig.Mounts[0].Target }] : spec.HostConfig.Mounts;
  const c = await docker.createContainer({ ...spec, Labels: labels, HostConfig: { ...spec.HostConfig, Mounts: mounts } } as Docker.ContainerCreateOptions);
  await c.start();
  return c;
}

/** What readiness adds on top: the same probe our provisioning runs, until it passes. */
export async function rawReady(c: Docker.Container): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if ((await execIn(c, READY_PROBE)).code === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('baseline container never became ready');
}

/**
 * CPU seconds the whole machine has spent working (user, nice, system, irq, softirq, steal)
 * since boot, from /proc/stat (in USER_HZ, 100 per second on Linux). Every process counts:
 * engines, sandboxes, the Temporal server, PostgreSQL, the worker, the benchmark itself.
 */
export function machineCpuSeconds(): number {
  const [, user, nice, system, , , irq, softirq, steal] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  return (user + nice + system + irq + softirq + steal) / 100;
}

/** CPU seconds (user and system, all threads) process `pid` has spent; 0 if it is gone. */
export function processCpuSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** Runs `fn`, returning its result with the wall seconds and the machine's CPU seconds it took. */
export async function measured<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number; cpuSeconds: number }> {
  const c0 = machineCpuSeconds();
  const t0 = performance.now();
  const value = await fn();
  return { value, seconds: (performance.now() - t0) / 1000, cpuSeconds: machineCpuSeconds() - c0 };
}

/** Lets a benchmark's user run as many workspaces as it needs, pinned to servers: an admin's override, as an operator grants it. */
export async function grantBenchUser(admin: ReturnType<typeof apiClient>, userId: string): Promise<void> {
  const res = await admin('PUT', `/users/${encodeURIComponent(userId)}/limits`, {
    plan: 'team',
    maxWorkspaces: 10_000,
    maxCpu: 100_000,
    maxMemoryMb: 1_000_000_000,
    maxDiskGb: 10_000_000,
    serverChoice: true,
  });
  if (res.status !== 200) throw new Error(`could not grant ${userId} limits: ${res.status} ${JSON.stringify(res.body)}`);
}
