// Tests run against the local stack (deploy/local/stack.sh up); its settings are in .stack/env.
// Variables already set in the environment win, so CI or a developer can point elsewhere.
import fs from 'node:fs';
import path from 'node:path';

const envFile = path.join(__dirname, '..', '.stack', 'env');
if (fs.existsSync(envFile)) {
  for (const line of fs.readFileSync(envFile, 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m && process.env[m[1]] === undefined) process.env[m[1]] = m[2];
  }
}
// Tests use their own database and Redis index so they never touch development data.
if (process.env.TEST_DATABASE_URL) process.env.DATABASE_URL = process.env.TEST_DATABASE_URL;
if (process.env.REDIS_URL) process.env.REDIS_URL = process.env.REDIS_URL.replace(/\/\d+$/, '/1');
process.env.NODE_ENV = 'test';
// Temporal payloads are encrypted in tests too (lib/payload-codec). The recorded histories in
// test/histories must replay on any machine, so tests encode with this fixed, test-only key
// first; the stack's own keys (from secrets.env) still decode.
const TEST_PAYLOAD_KEY = 'test-1:5seXPEmoqr0GpDWOKrT/R9ebElQUqHqV5G5/q4sgki4=';
if (!process.env.TEMPORAL_PAYLOAD_KEYS?.startsWith(TEST_PAYLOAD_KEY)) {
  process.env.TEMPORAL_PAYLOAD_KEYS = [TEST_PAYLOAD_KEY, process.env.TEMPORAL_PAYLOAD_KEYS].filter(Boolean).join(',');
}
process.env.LOG_LEVEL ??= 'warn';
