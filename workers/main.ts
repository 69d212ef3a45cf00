import { Client, Connection } from '@temporalio/client';
import { config } from '../lib/config';
import { createLogger } from '../lib/logger';
import { DockerFleet } from '../lib/docker-fleet';
import { createPrisma } from '../lib/prisma';
import { createRedis } from '../lib/redis';
import { createNativeConnection, temporalConnectionOptions, temporalDataConverter } from '../lib/temporal';
import { ensureSchedules } from './schedules';
import { backupDeps, cloudflareDeps, createWorker, llmDeps, installRuntimeLogger } from './worker';

/** The worker process: connects to Temporal, ensures schedules, runs workflows and activities until SIGTERM. */
async function main(): Promise<void> {
  const cfg = config();
  const logger = createLogger(cfg.LOG_LEVEL, cfg.LOG_FORMAT).child({ component: 'worker' });
  installRuntimeLogger(logger, 'INFO', cfg.WORKER_METRICS_ADDRESS);
  const fleet = new DockerFleet(
    { caFile: cfg.DOCKER_TLS_CA_FILE, certFile: cfg.DOCKER_TLS_CERT_FILE, keyFile: cfg.DOCKER_TLS_KEY_FILE },
    cfg.DOCKER_TIMEOUT_MS,
  );
  const prisma = createPrisma(cfg.DATABASE_URL);
  const redis = createRedis(cfg.REDIS_URL);
  const connection = await createNativeConnection(cfg);
  const clientConnection = await Connection.connect(temporalConnectionOptions(cfg));
  try {
    const client = new Client({ connection: clientConnection, namespace: cfg.TEMPORAL_NAMESPACE, dataConverter: temporalDataConverter(cfg) });
    if (cfg.ENSURE_SCHEDULES) {
      await ensureSchedules(client, cfg, logger);
    }
    const worker = await createWorker({
      connection,
      namespace: cfg.TEMPORAL_NAMESPACE,
      taskQueue: cfg.TEMPORAL_TASK_QUEUE,
      dataConverter: temporalDataConverter(cfg),
      deps: { fleet, prisma, redis, logger, imageArchive: cfg.WORKSPACE_IMAGE_ARCHIVE, overcommit: cfg.OVERCOMMIT_RATIO, ...backupDeps(cfg), ...cloudflareDeps(cfg), ...llmDeps(cfg, prisma, logger) },
      // Only when asked (the image sets it): a bundle left in dist/ must never shadow the sources in development.
      workflowBundlePath: process.env.WORKFLOW_BUNDLE_PATH,
      maxWorkflowTasks: cfg.WORKER_MAX_WORKFLOW_TASKS,
      maxActivities: cfg.WORKER_MAX_ACTIVITIES,
    });
    logger.info({ taskQueue: cfg.TEMPORAL_TASK_QUEUE, namespace: cfg.TEMPORAL_NAMESPACE }, 'worker started');
    // The SDK's Runtime shuts the worker down gracefully on SIGINT/SIGTERM; run() resolves then.
    await worker.run();
    logger.info('worker stopped');
  } finally {
    await Promise.allSettled([connection.close(), clientConnection.close(), prisma.$disconnect(), redis.quit()]);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
