/**
 * Backups as data: what a snapshot is called and tagged, the retention policy, and what a
 * restic failure means. No I/O here.
 */

/** Every snapshot the orchestrator makes carries this host name, so retention groups them the same whichever worker ran. */
export const BACKUP_HOST = 'podex';
export const DATABASE_STDIN_NAME = 'postgres.sql';
export const workspaceStdinName = (workspaceId: string) => `workspace-${workspaceId}.tar`;

export type SnapshotKind = 'database' | 'workspace';

export interface SnapshotTags {
  kind: SnapshotKind;
  run: string;
  workspaceId?: string;
  serverId?: string;
  database?: string;
}

/** restic tags are `key=value` words (a comma separates tags on the command line, so none may hold one). */
export function snapshotTags(t: SnapshotTags): string[] {
  const tags = ['podex', `kind=${t.kind}`, `run=${t.run}`];
  if (t.workspaceId) tags.push(`workspace=${t.workspaceId}`);
  if (t.serverId) tags.push(`server=${t.serverId}`);
  if (t.database) tags.push(`database=${t.database}`);
  for (const tag of tags) if (/[,\s]/.test(tag)) throw new Error(`snapshot tag ${JSON.stringify(tag)} may not contain a comma or a space`);
  return tags;
}

export function parseSnapshotTags(tags: string[] | undefined): Partial<SnapshotTags> {
  const out: Record<string, string> = {};
  for (const t of tags ?? []) {
    const i = t.indexOf('=');
    if (i > 0) out[t.slice(0, i)] = t.slice(i + 1);
  }
  return {
    kind: out.kind === 'database' || out.kind === 'workspace' ? out.kind : undefined,
    run: out.run,
    workspaceId: out.workspace,
    serverId: out.server,
    database: out.database,
  };
}

export interface RetentionPolicy {
  daily: number;
  weekly: number;
  monthly: number;
}

/** The seed's retention: a week of dailies, a month of weeklies, half a year of monthlies. */
export const DEFAULT_RETENTION: RetentionPolicy = { daily: 7, weekly: 4, monthly: 6 };

export function forgetArgs(p: RetentionPolicy): string[] {
  return ['--keep-daily', String(p.daily), '--keep-weekly', String(p.weekly), '--keep-monthly', String(p.monthly)];
}

/** `restic check --read-data-subset`: a fraction n/t, a percentage, or a size (as restic accepts them). */
export const CHECK_SUBSET = /^(\d+\/\d+|\d+(\.\d+)?%|\d+[KMGT]?)$/;

export type ResticErrorKind = 'WrongPassword' | 'NoRepository' | 'RepositoryUnreachable' | 'RepositoryLocked' | 'SnapshotNotFound' | 'ResticFailed';

/** What restic's stderr says went wrong, as a kind the workflow can act on. */
export function classifyResticError(stderr: string): ResticErrorKind {
  if (/wrong password or no key found/i.test(stderr)) return 'WrongPassword';
  if (/already locked|unable to create lock/i.test(stderr)) return 'RepositoryLocked';
  if (/no matching ID found|no snapshot found|invalid id/i.test(stderr)) return 'SnapshotNotFound';
  if (/connection refused|no such host|i\/o timeout|network is unreachable|dial tcp|TLS handshake|context deadline exceeded/i.test(stderr)) return 'RepositoryUnreachable';
  if (/Is there a repository at the following location\?|repository does not exist|unable to open config file/i.test(stderr)) return 'NoRepository';
  return 'ResticFailed';
}

/** A repository string with any user:password in a URL replaced, fit for logs and errors. */
export function redactRepository(repo: string): string {
  return repo.replace(/(\/\/)[^/@\s]+@/g, '$1***@');
}

/** The first meaningful line of restic's stderr, with credentials in repository URLs masked. */
export function resticMessage(stderr: string, repository: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const fatal = lines.find((l) => /^Fatal:/.test(l)) ?? lines[lines.length - 1] ?? 'restic failed';
  let msg = fatal.replace(/^Fatal:\s*/, '');
  if (repository) msg = msg.split(repository).join(redactRepository(repository));
  return redactRepository(msg).slice(0, 500);
}

/** Names a restore may create a database under: a plain lower-case identifier, never the live database's. */
export const DATABASE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
