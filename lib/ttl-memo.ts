/**
 * One answer shared for `ttlMs`: callers within the window (the one in flight included) get the
 * same promise, so a flood of callers costs one load per window. A load that fails is not kept.
 */
export function ttlMemo<T>(ttlMs: number, load: () => Promise<T>): { get(): Promise<T>; invalidate(): void } {
  let cached: { at: number; value: Promise<T> } | undefined;
  return {
    get() {
      const now = Date.now();
      // The window starts when a load starts.
      if (cached && now - cached.at < ttlMs) return cached.value;
      const entry = { at: now, value: load() };
      cached = entry;
      entry.value.catch(() => cached === entry && (cached = undefined));
      return entry.value;
    },
    invalidate() {
      cached = undefined;
    },
  };
}
