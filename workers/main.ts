import path from 'node:path';
import { config } from '../lib/config';
import { createLogger } from '../lib/logger';
import { DockerFleet } from '../lib/docker-fleet';
import { createNativeConnection } from '../lib/temporal';
import { createWorker, installRuntimeLogger } from './worker';

/** The worker process: connects to Temporal, registers workflows and activities, runs until SIGTERM. */
async function main(): Promise<void> {
  const cfg = config();
  const logger = createLogger(cfg.LOG_LEVEL).child({ component: 'worker' });
  installRuntimeLogger(logger);
  const fleet = new DockerFleet(
    { caFile: cfg.DOCKER_TLS_CA_FILE, certFile: cfg.DOCKER_TLS_CERT_FILE, keyFile: cfg.DOCKER_TLS_KEY_FILE },
    cfg.DOCKER_TIMEOUT_MS,
  );
  const connection = await createNativeConnection(cfg);
  try {
    const worker = await createWorker({
      connection,
      namespace: cfg.TEMPORAL_NAMESPACE,
      taskQueue: cfg.TEMPORAL_TASK_QUEUE,
      deps: { fleet },
      workflowBundlePath: process.env.WORKFLOW_BUNDLE_PATH ?? path.join(__dirname, '..', 'dist', 'workflow-bundle.js'),
    });
    logger.info({ taskQueue: cfg.TEMPORAL_TASK_QUEUE, namespace: cfg.TEMPORAL_NAMESPACE }, 'worker started');
    // The SDK's Runtime shuts the worker down gracefully on SIGINT/SIGTERM; run() resolves then.
    await worker.run();
    logger.info('worker stopped');
  } finally {
    await connection.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
