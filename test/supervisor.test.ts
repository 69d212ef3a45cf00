import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { mintToken } from '../api/auth';
import { MODELS } from '../domain/llm';
import { config } from '../lib/config';
import { createPrisma } from '../lib/prisma';
import { temporalConnectionOptions, temporalDataConverter } from '../lib/temporal';
import { FakeOpenAi } from './fake-openai';
import { eventually } from './harness';
import { terminateOpenWorkflows, uniq } from './helpers';

const ROOT = path.join(__dirname, '..');
const PODEX_KEY = `sk-or-podex-${randomBytes(8).toString('hex')}`;

interface LogLine {
  msg: string;
  component?: string;
  child?: string;
  pid?: number;
  signal?: string | null;
  code?: number | null;
  delayMs?: number;
}

async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * npm start's supervisor (deploy/local/supervise.ts) with the stack's settings but a port and a
 * task queue of its own, so neither the shared stack nor other suites' workers are touched.
 */
describe("npm start's supervisor", () => {
  const openrouter = new FakeOpenAi('openrouter', MODELS.map((m) => ({ id: m.openrouter, pricing: { prompt: '0.000003', completion: '0.000015' } })), PODEX_KEY);
  const taskQueue = uniq('supervisor');
  const user = uniq('supervisor-user');
  const prisma = createPrisma(config().DATABASE_URL, 2);
  const logs: LogLine[] = [];
  const notJson: string[] = [];
  let stderr = '';
  let supervisor: ChildProcess;
  let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  let url: string;
  let connection: Connection;

  /** The pids the supervisor reports starting `child` under, oldest first. */
  const started = (child: string) => logs.filter((l) => l.component === 'supervisor' && l.msg === `${child} process started`).map((l) => l.pid!);
  /** The child's own log lines with this message (the worker polls once it says 'worker started'). */
  const said = (component: string, msg: string) => logs.filter((l) => l.component === component && l.msg === msg).length;
  const get = (p: string, token?: string) => fetch(`${url}${p}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  beforeAll(async () => {
    await openrouter.start('/api/v1');
    url = `http://127.0.0.1:${await freePort()}`;
    connection = await Connection.connect(temporalConnectionOptions(config()));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: new URL(url).port,
      TEMPORAL_TASK_QUEUE: taskQueue,
      ENSURE_SCHEDULES: 'false',
      LOG_LEVEL: 'info',
      METRICS_ADDRESS: '',
      WORKER_METRICS_ADDRESS: '',
      OPENROUTER_API_KEY: PODEX_KEY,
      OPENROUTER_BASE_URL: openrouter.url,
      // Counted in the Redis every suite shares: the /healthz polls below must never meet a limit.
      RATE_LIMIT_PER_MINUTE: '100000',
      RATE_LIMIT_PER_USER_PER_MINUTE: '100000',
    };
    delete env.LOG_FORMAT;
    supervisor = spawn(process.execPath, ['--import', 'tsx', path.join('deploy', 'local', 'supervise.ts')], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    exited = new Promise((resolve) => supervisor.once('exit', (code, signal) => resolve({ code, signal })));
    let rest = '';
    supervisor.stdout!.on('data', (d: Buffer) => {
      const lines = (rest + d.toString()).split('\n');
      rest = lines.pop()!;
      for (const line of lines.filter(Boolean)) {
        try {
          logs.push(JSON.parse(line) as LogLine);
        } catch {
          notJson.push(line);
        }
      }
    });
    supervisor.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    await eventually(async () => supervisor.exitCode === null && said('worker', 'worker started') === 1 && (await get('/readyz')).ok, 120_000, 250).catch((err) => {
      throw new Error(`${(err as Error).message}\nstderr: ${stderr}`);
    });
  }, 150_000);

  afterAll(async () => {
    if (supervisor.exitCode === null && supervisor.signalCode === null) {
      for (const pid of [...started('worker'), ...started('api')]) if (alive(pid)) process.kill(pid, 'SIGKILL');
      supervisor.kill('SIGKILL');
    }
    const client = new Client({ connection, namespace: config().TEMPORAL_NAMESPACE, dataConverter: temporalDataConverter(config()) });
    await terminateOpenWorkflows(client, taskQueue);
    await connection.close();
    await prisma.llmJob.deleteMany({ where: { userId: user } });
    await prisma.llmUsage.deleteMany({ where: { userId: user } });
    await prisma.llmHold.deleteMany({ where: { userId: user } });
    await prisma.llmTopUp.deleteMany({ where: { userId: user } });
    await prisma.llmCredit.deleteMany({ where: { userId: user } });
    await prisma.$disconnect();
    await openrouter.stop();
  });

  it('starts a worker killed with SIGKILL again, saying why, while the API keeps answering, and the workflow finishes', async () => {
    const admin = await mintToken(config().JWT_SECRET_KEY, 'test-admin', 'admin');
    const token = await mintToken(config().JWT_SECRET_KEY, user, 'user');
    const topUp = await fetch(`${url}/credits/${user}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json', 'idempotency-key': randomUUID() },
      body: JSON.stringify({ addUsd: '5' }),
    });
    expect(topUp.status).toBe(200);
    // The provider holds its answer: the worker is killed in the middle of the job's activity.
    openrouter.delayMs = 4_000;
    const res = await fetch(`${url}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-3.5-sonnet', messages: [{ role: 'user', content: 'plan the drain' }] }),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    await eventually(async () => openrouter.seen.some((s) => s.path.endsWith('/chat/completions')), 30_000, 50);

    const [worker] = started('worker');
    expect(started('worker')).toHaveLength(1);
    process.kill(worker, 'SIGKILL');
    openrouter.delayMs = 0;

    // Until the new worker polls, the API answers every probe.
    const probes: number[] = [];
    await eventually(
      async () => {
        probes.push(await get('/healthz').then((r) => r.status, () => 0));
        return said('worker', 'worker started') === 2;
      },
      120_000,
      100,
    );
    expect(probes.length).toBeGreaterThan(1);
    expect(probes.filter((status) => status !== 200)).toEqual([]);
    const why = logs.find((l) => l.component === 'supervisor' && l.child === 'worker' && l.signal === 'SIGKILL');
    expect(why).toMatchObject({ pid: worker, delayMs: expect.any(Number) });
    expect(why!.msg).toMatch(/^worker killed by SIGKILL after [\d.]+ s; restarting in [\d.]+ s$/);
    expect(started('worker')).toHaveLength(2);
    expect(started('worker')[1]).not.toBe(worker);
    expect(alive(started('api')[0])).toBe(true);

    const job = await eventually(async () => {
      const j = (await (await get(`/v1/jobs/${id}`, token)).json()) as { status: string; result?: { completion: { choices: { message: { content: string } }[] } } };
      return j.status === 'succeeded' ? j : undefined;
    }, 120_000, 250);
    expect(job.result!.completion.choices[0].message.content).toMatch(/^openrouter/);
    expect(openrouter.seen.filter((s) => s.path.endsWith('/chat/completions')).length).toBeGreaterThanOrEqual(2);
  }, 300_000);

  it('starts an API killed with SIGKILL again', async () => {
    const [api] = started('api');
    process.kill(api, 'SIGKILL');
    await eventually(async () => said('api', 'api listening') === 2, 120_000, 100);
    expect((await get('/healthz')).status).toBe(200);
    const why = logs.find((l) => l.component === 'supervisor' && l.child === 'api' && l.signal === 'SIGKILL');
    expect(why).toMatchObject({ pid: api, delayMs: expect.any(Number) });
    expect(why!.msg).toMatch(/^api killed by SIGKILL after [\d.]+ s; restarting in [\d.]+ s$/);
    expect(started('api')).toHaveLength(2);
    expect(alive(api)).toBe(false);
  }, 180_000);

  it('on SIGTERM stops both children and exits 0; into a pipe every line is JSON', async () => {
    const children = [started('worker').at(-1)!, started('api').at(-1)!];
    supervisor.kill('SIGTERM');
    expect(await exited).toEqual({ code: 0, signal: null });
    for (const pid of children) expect(alive(pid)).toBe(false);
    const stopped = logs.filter((l) => l.component === 'supervisor' && /stopped \(/.test(l.msg)).map((l) => [l.child, l.code, l.signal]);
    expect(stopped.sort()).toEqual([
      ['api', 0, null],
      ['worker', 0, null],
    ]);
    // Its stdout was a pipe: the supervisor chose JSON and its children wrote JSON too.
    expect(notJson).toEqual([]);
    expect([...new Set(logs.map((l) => l.component))]).toEqual(expect.arrayContaining(['supervisor', 'worker', 'api']));
  }, 120_000);
});
