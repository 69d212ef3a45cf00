import { config } from '../lib/config';
import { createRedis } from '../lib/redis';
import { uniq } from './helpers';

describe('Redis', () => {
  const redis = createRedis(config().REDIS_URL);
  const sub = redis.duplicate();
  afterAll(async () => {
    await Promise.all([redis.quit(), sub.quit()]);
  });

  it('sets and gets a value with a TTL', async () => {
    const key = uniq('podex:test');
    await redis.set(key, JSON.stringify({ cpu: 1.5 }), 'EX', 30);
    expect(JSON.parse((await redis.get(key))!)).toEqual({ cpu: 1.5 });
    const ttl = await redis.ttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(30);
    await redis.del(key);
    expect(await redis.get(key)).toBeNull();
  });

  it('delivers published messages to a subscriber', async () => {
    const channel = uniq('podex:events');
    await sub.subscribe(channel);
    const received: string[] = [];
    const got = new Promise<void>((resolve) => {
      sub.on('message', (ch, msg) => {
        if (ch === channel) received.push(msg);
        if (received.length === 2) resolve();
      });
    });
    expect(await redis.publish(channel, 'one')).toBe(1);
    await redis.publish(channel, 'two');
    await got;
    expect(received).toEqual(['one', 'two']);
    await sub.unsubscribe(channel);
  });
});
