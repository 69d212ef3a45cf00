import { spawn, type ChildProcess } from 'node:child_process';
import { DEFAULT_RESTART_POLICY, describeExit, nextRestart, type RestartPolicy } from '../domain/restart-backoff';
import type { Logger } from './logger';

export interface ChildSpec {
  name: string;
  command: string;
  args: string[];
}

export interface SupervisorOptions {
  logger: Logger;
  cwd: string;
  env: NodeJS.ProcessEnv;
  policy?: RestartPolicy;
  /** How long stop() lets the children shut down gracefully before it kills them. */
  stopTimeoutMs?: number;
}

interface Slot {
  spec: ChildSpec;
  proc?: ChildProcess;
  startedAt: number;
  failures: number;
  timer?: NodeJS.Timeout;
}

/**
 * Keeps long-running processes up (npm start's worker and API): a child that exits or is killed
 * is started again after a back-off (domain/restart-backoff.ts), with a log line saying why.
 * Children run in process groups of their own, so a terminal's Ctrl-C reaches the supervisor
 * alone and each child gets exactly one signal, the one stop() forwards: the Temporal worker
 * treats a second SIGINT as a kill.
 */
export class Supervisor {
  private readonly slots: Slot[];
  private stopping?: Promise<void>;

  constructor(
    specs: ChildSpec[],
    private readonly opts: SupervisorOptions,
  ) {
    this.slots = specs.map((spec) => ({ spec, startedAt: 0, failures: 0 }));
  }

  start(): void {
    for (const slot of this.slots) this.launch(slot);
  }

  /** The children running now (a last-resort kill on exit needs them synchronously). */
  pids(): number[] {
    return this.slots.flatMap((s) => (s.proc?.pid !== undefined && s.proc.exitCode === null && s.proc.signalCode === null ? [s.proc.pid] : []));
  }

  /** Forwards `signal` to every child, cancels pending restarts and resolves once all have exited. */
  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    this.stopping ??= this.stopAll(signal);
    return this.stopping;
  }

  private async stopAll(signal: NodeJS.Signals): Promise<void> {
    const { logger } = this.opts;
    const running = this.slots.filter((s) => {
      clearTimeout(s.timer);
      s.timer = undefined;
      return s.proc && s.proc.exitCode === null && s.proc.signalCode === null;
    });
    const exited = running.map((s) => new Promise<void>((resolve) => s.proc!.once('exit', () => resolve())));
    for (const s of running) s.proc!.kill(signal);
    const killer = setTimeout(() => {
      for (const s of running) {
        if (s.proc!.exitCode !== null || s.proc!.signalCode !== null) continue;
        logger.warn({ child: s.spec.name, pid: s.proc!.pid }, `${s.spec.name} did not stop in time; killing it`);
        s.proc!.kill('SIGKILL');
      }
    }, this.opts.stopTimeoutMs ?? 30_000);
    await Promise.all(exited);
    clearTimeout(killer);
  }

  private launch(slot: Slot): void {
    slot.timer = undefined;
    const { name } = slot.spec;
    const proc = spawn(slot.spec.command, slot.spec.args, { cwd: this.opts.cwd, env: this.opts.env, stdio: ['ignore', 'inherit', 'inherit'], detached: true });
    slot.proc = proc;
    slot.startedAt = Date.now();
    proc.once('exit', (code, signal) => this.exited(slot, proc, code, signal));
    proc.on('error', (err) => {
      // Without a pid it never started and no 'exit' follows; otherwise a failed kill, harmless.
      if (proc.pid === undefined) this.exited(slot, proc, null, null, err);
      else this.opts.logger.warn({ child: name, pid: proc.pid, err: err.message }, `${name}: ${err.message}`);
    });
    if (proc.pid !== undefined) this.opts.logger.info({ child: name, pid: proc.pid }, `${name} process started`);
  }

  private exited(slot: Slot, proc: ChildProcess, code: number | null, signal: NodeJS.Signals | null, err?: Error): void {
    if (slot.proc !== proc) return;
    slot.proc = undefined;
    const { name } = slot.spec;
    const why = describeExit(code, signal);
    if (this.stopping) {
      this.opts.logger.info({ child: name, pid: proc.pid, code, signal }, `${name} stopped (${why})`);
      return;
    }
    const uptimeMs = Date.now() - slot.startedAt;
    const plan = nextRestart(this.opts.policy ?? DEFAULT_RESTART_POLICY, slot.failures, uptimeMs);
    slot.failures = plan.failures;
    this.opts.logger.warn(
      { child: name, pid: proc.pid, code, signal, err: err?.message, uptimeMs, delayMs: plan.delayMs, failures: plan.failures },
      `${name} ${why} after ${(uptimeMs / 1000).toFixed(1)} s; restarting in ${(plan.delayMs / 1000).toFixed(1)} s`,
    );
    slot.timer = setTimeout(() => this.launch(slot), plan.delayMs);
  }
}
