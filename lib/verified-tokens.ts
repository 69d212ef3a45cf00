/**
 * Tokens already verified, each kept until its own `exp` (seconds since the epoch), so a proxy's
 * repeated question about the same credentials is a map lookup. Bounded: emptied when full.
 * A value without `exp` is never kept.
 */
export class VerifiedTokens<V extends { exp?: number }> {
  private readonly map = new Map<string, V & { exp: number }>();

  constructor(private readonly max: number) {}

  remember(token: string, v: V): void {
    if (!v.exp) return;
    if (this.map.size >= this.max) this.map.clear();
    this.map.set(token, { ...v, exp: v.exp });
  }

  recall(token: string): (V & { exp: number }) | undefined {
    const v = this.map.get(token);
    if (v && v.exp > Date.now() / 1000) return v;
    if (v) this.map.delete(token);
    return undefined;
  }
}
