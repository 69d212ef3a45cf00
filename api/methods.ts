/** The methods an Express router serves on a path, for a 405's Allow header. */

interface Layer {
  match(path: string): false | { path: string } | boolean;
  path?: string;
  route?: { methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
}

/**
 * Every method some route of `router` (and the routers mounted in it) answers on `path`: empty
 * when none matches it. GET brings HEAD, as Express answers HEAD with the GET route.
 */
export function allowedMethods(router: unknown, path: string): string[] {
  const found = new Set<string>();
  const todo: [Layer[], string][] = [[(router as { stack?: Layer[] })?.stack ?? [], path]];
  while (todo.length) {
    const [stack, p] = todo.pop()!;
    for (const layer of stack) {
      const m = layer.match(p);
      if (!m) continue;
      if (layer.route) {
        for (const [method, on] of Object.entries(layer.route.methods)) if (on && method !== '_all') found.add(method.toUpperCase());
      } else if (layer.handle?.stack) {
        // A mounted router sees the path without its mount point.
        const consumed = typeof m === 'object' ? m.path : (layer.path ?? '');
        todo.push([layer.handle.stack, p.slice(consumed.length) || '/']);
      }
    }
  }
  if (found.has('GET')) found.add('HEAD');
  const order = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];
  return [...found].sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99) || a.localeCompare(b));
}
