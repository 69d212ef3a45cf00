import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import { resolveLogFormat } from '../domain/log-format';

/**
 * The root logger. Components take a named child (`logger.child({ component: 'api' })`).
 * Secrets are redacted by key wherever they appear in a context object (before either format
 * sees the line). JSON lines unless stdout is a terminal or LOG_FORMAT says otherwise.
 */
export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info', format: string | undefined = process.env.LOG_FORMAT): Logger {
  const options: pino.LoggerOptions = {
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
  };
  if (resolveLogFormat(format, Boolean(process.stdout.isTTY)) === 'json') return pino(options);
  // In this thread and synchronous: a transport's worker thread could lose the last lines of a
  // process that exits at once (a failed start), the lines a person most needs to see.
  const stream = pretty({
    sync: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'service,component',
    messageFormat: '{if component}{component}: {end}{msg}',
  });
  return pino(options, stream);
}

export type { Logger };
