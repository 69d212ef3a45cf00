import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { SEARCH_ATTRIBUTES } from '../lib/constants';
import { historyToJSON, type History } from '@temporalio/common/lib/proto-utils';
import { DefaultLogger, makeTelemetryFilterString, NativeConnection, Runtime, type Worker } from '@temporalio/worker';
import { config } from '../lib/config';
import { createLogger } from '../lib/logger';
import { createPrisma } from '../lib/prisma';
import { createRedis } from '../lib/redis';
import { backupDeps, cloudflareDeps, llmDeps } from '../workers/worker';
import { temporalConnectionOptions, temporalDataConverter } from '../lib/temporal';
import { createWorker } from '../workers/worker';
import type { ActivityDeps } from '../activities';
import { terminateOpenWorkflows, testFleet, uniq } from './helpers';

let runtimeInstalled = false;
/**
 * Tests provoke activity failures on purpose; the SDK's warnings about them are noise here.
 * Installed only by tests that run workers: the native runtime keeps the process alive.
 */
export function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({
    logger: new DefaultLogger('ERROR'),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }), forward: {} } },
  });
}

export const HISTORIES_DIR = path.join(__dirname, 'histories');
export const WORKFLOWS_PATH = path.join(__dirname, '..', 'workflows', 'index.ts');
/** What a replay of a recorded or fetched history needs: the workflows and the codec that decodes their payloads. */
export const replayOptions = () => ({ workflowsPath: WORKFLOWS_PATH, dataConverter: temporalDataConverter(config()) });

/** Real clients for activities, as the worker process builds them. */
export function testDeps(): ActivityDeps & { close(): Promise<void> } {
  const c = config();
  const prisma = createPrisma(c.DATABASE_URL, 4);
  const redis = createRedis(c.REDIS_URL);
  const logger = createLogger(process.env.LOG_LEVEL ?? 'warn');
  return {
    fleet: testFleet(),
    prisma,
    redis,
    logger,
    imageArchive: c.WORKSPACE_IMAGE_ARCHIVE,
    overcommit: c.OVERCOMMIT_RATIO,
    ...backupDeps(c),
    ...cloudflareDeps(c),
    ...llmDeps(c, prisma, logger),
    async close() {
      await Promise.allSettled([prisma.$disconnect(), redis.quit()]);
    },
  };
}

/** Connections to the stack's Temporal dev server and a worker on a task queue of the test's own. */
export async function temporalForTest(prefix = 'test', overrides: Partial<ActivityDeps> = {}, withWorker = true) {
  quietRuntime();
  const c = config();
  const opts = temporalConnectionOptions(c);
  const deps = testDeps();
  const nativeConnection = await NativeConnection.connect(opts);
  const connection = await Connection.connect(opts);
  const client = new Client({ connection, namespace: c.TEMPORAL_NAMESPACE, dataConverter: temporalDataConverter(c) });
  const taskQueue = uniq(prefix);
  // A worker not meant to run must not be created: it would hold the connection open.
  const worker = (withWorker ? await createWorker({ connection: nativeConnection, namespace: c.TEMPORAL_NAMESPACE, taskQueue, dataConverter: temporalDataConverter(c), deps: { ...deps, ...overrides } }) : undefined) as Worker;
  return {
    client,
    taskQueue,
    worker,
    deps,
    async close() {
      try {
        await terminateOpenWorkflows(client, taskQueue);
      } finally {
        await connection.close();
        await nativeConnection.close();
        await deps.close();
      }
    },
  };
}

/** Workflow ids of recorded histories whose workflow derives ids (children's) from its own id; others replay under their name. */
export const HISTORY_WORKFLOW_IDS = path.join(HISTORIES_DIR, 'workflow-ids.json');

/**
 * Saves a history for the replay suite when RECORD_HISTORIES=1 (run once per workflow change).
 * A workflow that names its children after its own id replays only under that id: pass it.
 */
export function maybeRecordHistory(name: string, history: History, workflowId?: string): void {
  if (process.env.RECORD_HISTORIES !== '1') return;
  fs.mkdirSync(HISTORIES_DIR, { recursive: true });
  fs.writeFileSync(path.join(HISTORIES_DIR, `${name}.json`), historyToJSON(history));
  if (workflowId === undefined) return;
  const ids = fs.existsSync(HISTORY_WORKFLOW_IDS) ? (JSON.parse(fs.readFileSync(HISTORY_WORKFLOW_IDS, 'utf8')) as Record<string, string>) : {};
  ids[name] = workflowId;
  const sorted = Object.fromEntries(Object.entries(ids).sort(([a], [b]) => a.localeCompare(b)));
  fs.writeFileSync(HISTORY_WORKFLOW_IDS, `${JSON.stringify(sorted, null, 2)}\n`);
}

/**
 * Temporal's time-skipping test server (the Java one setup.sh fetched from Maven Central),
 * with the orchestrator's search attributes registered as the stack registers them.
 */
export async function timeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  const env = await startTimeSkipping();
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: Object.fromEntries(SEARCH_ATTRIBUTES.map((a) => [a.name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD])),
  });
  return env;
}

/**
 * The SDK gives the Java server 5 s to listen, fixed; a JVM starting while the rest of the suite
 * loads both cores can take longer (seen on a fresh clone), so a start that timed out is tried again.
 */
async function startTimeSkipping(attempts = 3): Promise<TestWorkflowEnvironment> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await TestWorkflowEnvironment.createTimeSkipping({
        server: { executable: { type: 'existing-path', path: path.join(__dirname, '..', '.stack', 'bin', 'temporal-test-server') } },
        client: { dataConverter: temporalDataConverter(config()) },
      });
    } catch (err) {
      if (attempt >= attempts || !/did not start within/.test(String(err))) throw err;
      process.stderr.write(`time-skipping test server did not start in time (attempt ${attempt}); trying again\n`);
    }
  }
}
