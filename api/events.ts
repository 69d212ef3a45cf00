import type { ServerResponse } from 'node:http';
import type { Redis } from '../lib/redis';
import { RedisUnavailableError } from '../lib/unavailable';

type Listener = (message: string) => void;

/**
 * Workspace status events from Redis, fanned out to server-sent-event clients. One
 * subscriber connection per API process, whatever the number of clients.
 */
export class WorkspaceEvents {
  private sub?: Redis;
  private subscribed?: Promise<void>;
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly streams = new Map<string, number>();

  constructor(private readonly redis: Redis) {}

  /**
   * The process's pattern subscription, made on first use. ioredis subscribes again by itself
   * after a reconnect, but only to what the server once confirmed: a first subscribe that fails
   * (Redis down) is dropped with its connection, and the next caller tries afresh.
   */
  private ensure(): Promise<void> {
    this.subscribed ??= (async () => {
      const sub = (this.sub = this.redis.duplicate());
      sub.on('error', () => undefined); // reconnects by itself; callers learn of an outage from subscribe()
      sub.on('pmessage', (_pattern: string, channel: string, message: string) => {
        const id = channel.slice(channel.lastIndexOf(':') + 1);
        for (const l of this.listeners.get(id) ?? []) l(message);
      });
      try {
        await sub.psubscribe('podex:events:workspace:*');
      } catch (err) {
        sub.disconnect();
        if (this.sub === sub) this.sub = undefined;
        this.subscribed = undefined;
        throw new RedisUnavailableError(`workspace events: ${(err as Error).message}`);
      }
    })();
    return this.subscribed;
  }

  /** Adds a listener for one workspace's events; rejects with RedisUnavailableError when the subscription cannot be made. */
  async subscribe(workspaceId: string, listener: Listener): Promise<() => void> {
    await this.ensure();
    let set = this.listeners.get(workspaceId);
    if (!set) this.listeners.set(workspaceId, (set = new Set()));
    set.add(listener);
    return () => {
      set!.delete(listener);
      if (set!.size === 0) this.listeners.delete(workspaceId);
    };
  }

  /** Listeners held now, across workspaces (tests and leak checks read it). */
  get listenerCount(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  /** Takes one of `max` event streams for `owner` on this process: its release (call once), or null when all are held. */
  claimStream(owner: string, max: number): (() => void) | null {
    const held = this.streams.get(owner) ?? 0;
    if (held >= max) return null;
    this.streams.set(owner, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.streams.get(owner) ?? 1) - 1;
      if (left > 0) this.streams.set(owner, left);
      else this.streams.delete(owner);
    };
  }

  async close(): Promise<void> {
    await this.sub?.quit().catch(() => undefined);
  }
}

/**
 * Runs clean-ups when the client goes: at once if it has already gone (it may leave while the
 * handler awaits, before a close listener could be added), else when its connection closes.
 */
export function whenGone(res: ServerResponse): { gone: () => boolean; hold: (cleanup: () => void) => void } {
  const cleanups: (() => void)[] = [];
  let gone = false;
  const finish = () => {
    gone = true;
    for (const c of cleanups.splice(0)) c();
  };
  res.once('close', finish);
  if (res.destroyed || res.socket?.destroyed !== false) finish();
  return {
    gone: () => gone,
    hold: (cleanup) => (gone ? cleanup() : cleanups.push(cleanup)),
  };
}
