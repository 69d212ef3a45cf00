/**
 * How the processes write their logs: JSON lines wherever a machine reads them (a pipe, a file,
 * journald, promtail), pretty lines for a person at a terminal — pino's usual split.
 */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormatSetting = (typeof LOG_FORMATS)[number];
export type LogFormat = Exclude<LogFormatSetting, 'auto'>;

/**
 * The format a process writes: LOG_FORMAT when it names one, else pretty only when stdout is a
 * terminal. An unknown setting counts as `auto` (the config schema refuses it before this runs).
 */
export function resolveLogFormat(setting: string | undefined, stdoutIsTty: boolean): LogFormat {
  if (setting === 'json' || setting === 'pretty') return setting;
  return stdoutIsTty ? 'pretty' : 'json';
}
