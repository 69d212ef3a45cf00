import pino, { type Logger } from 'pino';

/**
 * The root logger. Components take a named child (`logger.child({ component: 'api' })`).
 * Secrets are redacted by key wherever they appear in a context object.
 */
export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { service: 'podex-orchestrator' },
    redact: {
      paths: [
        'password', '*.password', 'apiKey', '*.apiKey', 'key', '*.key', 'cert', '*.cert', 'ca', '*.ca',
        'token', '*.token', 'authorization', '*.authorization', 'req.headers.authorization',
        'req.headers["x-api-key"]', 'env', '*.env', 'Env', '*.Env',
      ],
      censor: '[redacted]',
    },
  });
}

export type { Logger };
