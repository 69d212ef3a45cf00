import type { Server } from 'node:http';
import { config } from '../lib/config';
import { createLogger } from '../lib/logger';
import { createPrisma } from '../lib/prisma';
import { createRedis } from '../lib/redis';
import { createTemporalClient } from '../lib/temporal';
import { DockerFleet } from '../lib/docker-fleet';
import { apiSettings, createApiServer, createApp } from './app';
import { countWorkflowStarts, metricsServer } from './metrics';

/** The API process: one Temporal client, one Prisma client, one Redis connection. */
async function main(): Promise<void> {
  const cfg = config();
  const logger = createLogger(cfg.LOG_LEVEL, cfg.LOG_FORMAT).child({ component: 'api' });
  // Every dependency call of a request is bounded: an outage is a fast 503, never a hung request.
  const prisma = createPrisma(cfg.DATABASE_URL, 10, { connectTimeoutMs: cfg.DATABASE_CONNECT_TIMEOUT_MS, queryTimeoutMs: cfg.DATABASE_QUERY_TIMEOUT_MS });
  const redis = createRedis(cfg.REDIS_URL, { commandTimeoutMs: cfg.REDIS_COMMAND_TIMEOUT_MS });
  let redisReportedAt = 0;
  redis.on('error', (err: Error) => {
    // ioredis reconnects by itself, every attempt an error: one line per 10 s says Redis is down.
    if (Date.now() - redisReportedAt < 10_000) return;
    redisReportedAt = Date.now();
    logger.warn({ err: err.message }, 'redis unavailable; reconnecting');
  });
  const temporal = await createTemporalClient(cfg, { workflow: [countWorkflowStarts] }, { rpcTimeoutMs: cfg.TEMPORAL_RPC_TIMEOUT_MS });
  const fleet = new DockerFleet({ caFile: cfg.DOCKER_TLS_CA_FILE, certFile: cfg.DOCKER_TLS_CERT_FILE, keyFile: cfg.DOCKER_TLS_KEY_FILE }, cfg.DOCKER_TIMEOUT_MS);
  const app = createApp({ fleet, prisma, redis, temporal, logger, settings: apiSettings(cfg) });
  const server: Server = createApiServer(app).listen(cfg.PORT, cfg.API_HOST);
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  logger.info({ host: cfg.API_HOST, port: cfg.PORT }, 'api listening');
  let metrics: Server | undefined;
  if (cfg.METRICS_ADDRESS) {
    const at = cfg.METRICS_ADDRESS.lastIndexOf(':');
    metrics = metricsServer(prisma, (err) => logger.warn({ err: err.message }, 'metrics unavailable')).listen(Number(cfg.METRICS_ADDRESS.slice(at + 1)), cfg.METRICS_ADDRESS.slice(0, at));
    await new Promise<void>((resolve, reject) => metrics!.once('listening', resolve).once('error', reject));
    logger.info({ address: cfg.METRICS_ADDRESS }, 'metrics listening');
  }

  const stop = new Promise<void>((resolve) => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => resolve());
  });
  await stop;
  logger.info('shutting down');
  try {
    // In-flight requests get a grace period; idle keep-alive sockets close at once.
    const grace = setTimeout(() => server.closeAllConnections(), 10_000).unref();
    metrics?.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    clearTimeout(grace);
  } finally {
    await Promise.allSettled([(app.locals.close as () => Promise<void>)(), prisma.$disconnect(), redis.quit(), temporal.connection.close()]);
  }
  logger.info('api stopped');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
