import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Client, Connection } from '@temporalio/client';
import { config } from '../lib/config';
import { createLogger } from '../lib/logger';
import { createPrisma } from '../lib/prisma';
import { createRedis } from '../lib/redis';
import { temporalConnectionOptions, temporalDataConverter } from '../lib/temporal';
import { apiSettings, createApp } from '../api/app';
import { mintToken } from '../api/auth';
import { testFleet } from './helpers';

async function listen(app: ReturnType<typeof createApp>): Promise<{ server: { close(): Promise<void> }; url: string }> {
  const http: Server = app.listen(0, '127.0.0.1');
  await new Promise((r) => http.once('listening', r));
  // The app's own connections (the route table's Redis subscriber) close with it.
  const close = async () => {
    http.close();
    await (app.locals.close as () => Promise<void>)();
  };
  return { server: { close }, url: `http://127.0.0.1:${(http.address() as AddressInfo).port}` };
}

describe('API health endpoints', () => {
  const c = config();
  const prisma = createPrisma(c.DATABASE_URL, 2);
  const redis = createRedis(c.REDIS_URL);
  const deadRedis = createRedis('redis://127.0.0.1:1/0');
  deadRedis.on('error', () => undefined);
  let connection: Connection;
  let temporal: Client;

  beforeAll(async () => {
    connection = await Connection.connect(temporalConnectionOptions(c));
    temporal = new Client({ connection, namespace: c.TEMPORAL_NAMESPACE, dataConverter: temporalDataConverter(c) });
  });
  afterAll(async () => {
    deadRedis.disconnect();
    await Promise.allSettled([prisma.$disconnect(), redis.quit(), connection.close()]);
  });

  it('/healthz answers and /readyz is ready when Temporal, PostgreSQL and Redis answer', async () => {
    const { server, url } = await listen(createApp({ fleet: testFleet(), prisma, redis, temporal, logger: createLogger('silent'), settings: { ...apiSettings(c), rateLimitPerMinute: 100_000 } }));
    try {
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const res = await fetch(`${url}/readyz`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        status: 'ready',
        checks: { temporal: { ok: true }, postgres: { ok: true }, redis: { ok: true } },
      });
    } finally {
      await server.close();
    }
  });

  it('/readyz is 503 and names the dependency that does not answer', async () => {
    const { server, url } = await listen(createApp({ fleet: testFleet(), prisma, redis: deadRedis, temporal, logger: createLogger('silent'), settings: { ...apiSettings(c), rateLimitPerMinute: 100_000 } }));
    try {
      const res = await fetch(`${url}/readyz`);
      expect(res.status).toBe(503);
      const body = (await res.json()) as { checks: Record<string, { ok: boolean; error?: string }> };
      expect(body.checks.redis).toEqual({ ok: false, error: 'unavailable' });
      expect(body.checks.postgres.ok).toBe(true);
      expect(body.checks.temporal.ok).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('unknown routes and malformed JSON get clear 4xx answers', async () => {
    const { server, url } = await listen(createApp({ fleet: testFleet(), prisma, redis, temporal, logger: createLogger('silent'), settings: { ...apiSettings(c), rateLimitPerMinute: 100_000 } }));
    try {
      const token = await mintToken(c.JWT_SECRET_KEY, 'someone', 'user');
      expect((await fetch(`${url}/nope`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(404);
      // Bodies are read only after authentication (and the rate limits): a signed-in client's malformed JSON.
      const bad = await fetch(`${url}/healthz`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{bad' });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { message: string }).message).toMatch(/JSON/);
      // A body past the limit is the client's mistake: 413, never a 5xx.
      const big = await fetch(`${url}/workspaces`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }) });
      expect(big.status).toBe(413);
    } finally {
      await server.close();
    }
  });
});
