// Preloaded into the Prisma CLI (prisma/cli.cjs): the WASM schema engine leaves 10 s and
// 60 s timers pending after a command has finished; unref'ing them lets the CLI exit as
// soon as its work is done instead of hanging for a minute.
'use strict';
const LONG_MS = 5000;
for (const name of ['setTimeout', 'setInterval']) {
  const original = globalThis[name];
  globalThis[name] = function unrefLongTimers(fn, ms, ...args) {
    const timer = original.call(this, fn, ms, ...args);
    if (typeof ms === 'number' && ms >= LONG_MS && timer && typeof timer.unref === 'function') timer.unref();
    return timer;
  };
}
