import { randomUUID } from 'node:crypto';
import { ROUTES_CHANNEL } from './constants';
import type { Redis } from './redis';

/**
 * How a workflow step tells every API process's route table that a workspace's row changed:
 * a message on ROUTES_CHANNEL (`{id}` or `{id} {nonce}`). With a nonce, each table that read
 * the row again answers on a list of that nonce, so a step about to stop a container can wait
 * until no proxy request is routed into it any more.
 */
const ackKey = (nonce: string) => `podex:routes:ack:${nonce}`;
const ACK_TTL_SECONDS = 30;

export function parseAnnouncement(message: string): { workspaceId: string; nonce?: string } {
  const [workspaceId, nonce] = message.split(' ');
  return { workspaceId, nonce };
}

/** Announces a change; a lost message is caught by the tables' own catch-up within a second. */
export async function announceRoute(redis: Redis, workspaceId: string): Promise<void> {
  await redis.publish(ROUTES_CHANNEL, workspaceId);
}

/**
 * Announces a change and waits (at most `timeoutMs`) until every route table that received it
 * has read the row again. Returns how many received it and how many answered.
 */
export async function announceRouteAndWait(redis: Redis, workspaceId: string, timeoutMs = 2_000): Promise<{ receivers: number; acknowledged: number }> {
  const nonce = randomUUID();
  const receivers = await redis.publish(ROUTES_CHANNEL, `${workspaceId} ${nonce}`);
  const deadline = Date.now() + timeoutMs;
  let acknowledged = 0;
  while (receivers > 0) {
    acknowledged = await redis.llen(ackKey(nonce));
    if (acknowledged >= receivers || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  await redis.del(ackKey(nonce));
  return { receivers, acknowledged };
}

/** A route table's answer: it has read the row again. */
export async function acknowledgeAnnouncement(redis: Redis, nonce: string): Promise<void> {
  await redis.multi().rpush(ackKey(nonce), '1').expire(ackKey(nonce), ACK_TTL_SECONDS).exec();
}
