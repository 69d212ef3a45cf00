import { parseConfig, type Config } from '../domain/config';

let cached: Config | undefined;

/** The process's configuration, parsed from the environment on first use. */
export function config(): Config {
  cached ??= parseConfig(process.env);
  return cached;
}

export type { Config };
