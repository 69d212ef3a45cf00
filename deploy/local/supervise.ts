/**
 * npm start's supervisor: runs the worker and the API, starts either again when it dies (with
 * back-off, logging why), and stops both on SIGINT, SIGTERM or SIGHUP. Production runs the two as
 * separate services instead (the compose file, or systemd units: see README "Running in production").
 */
import path from 'node:path';
import { resolveLogFormat } from '../../domain/log-format';
import { config } from '../../lib/config';
import { createLogger } from '../../lib/logger';
import { Supervisor, type ChildSpec } from '../../lib/supervisor';

const ROOT = path.join(__dirname, '..', '..');

// Node runs each entry point itself (tsx as a loader, not the tsx CLI), so a signal reaches the process doing the work.
const node = (name: string, entry: string): ChildSpec => ({ name, command: process.execPath, args: ['--import', 'tsx', entry] });

async function main(): Promise<void> {
  // A bad setting fails here, once, naming the variable: no restart could mend it.
  const cfg = config();
  // Decided once, here: the children are told rather than each looking at its own stdout.
  const format = resolveLogFormat(cfg.LOG_FORMAT, Boolean(process.stdout.isTTY));
  const logger = createLogger(cfg.LOG_LEVEL, format).child({ component: 'supervisor' });
  const supervisor = new Supervisor([node('worker', 'workers/main.ts'), node('api', 'api/main.ts')], {
    logger,
    cwd: ROOT,
    env: { ...process.env, LOG_FORMAT: format },
  });
  // Children live in process groups of their own: should this process die of an error, take them along.
  process.on('exit', () => {
    for (const pid of supervisor.pids()) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  });
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      // Kept for the whole run: a second signal while stopping must not kill this process by default.
      process.on(sig, () => resolve(sig));
    }
  });
  supervisor.start();
  const sig = await signalled;
  logger.info({ signal: sig }, 'stopping the worker and the API');
  // A closed terminal (SIGHUP) means stop; the children hear it as the usual SIGTERM.
  await supervisor.stop(sig === 'SIGHUP' ? 'SIGTERM' : sig);
  logger.info('stopped');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
