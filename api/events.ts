import type { Redis } from '../lib/redis';

type Listener = (message: string) => void;

/**
 * Workspace status events from Redis, fanned out to server-sent-event clients. One
 * subscriber connection per API process, whatever the number of clients.
 */
export class WorkspaceEvents {
  private sub?: Redis;
  private readonly listeners = new Map<string, Set<Listener>>();

  constructor(private readonly redis: Redis) {}

  private async ensure(): Promise<void> {
    if (this.sub) return;
    this.sub = this.redis.duplicate();
    this.sub.on('pmessage', (_pattern: string, channel: string, message: string) => {
      const id = channel.slice(channel.lastIndexOf(':') + 1);
      for (const l of this.listeners.get(id) ?? []) l(message);
    });
    await this.sub.psubscribe('podex:events:workspace:*');
  }

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

  async close(): Promise<void> {
    await this.sub?.quit().catch(() => undefined);
  }
}
