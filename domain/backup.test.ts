import { classifyResticError, forgetArgs, parseSnapshotTags, redactRepository, resticMessage, snapshotTags, DEFAULT_RETENTION } from './backup';
import { parseConfig } from './config';

describe('backup domain', () => {
  it('tags a snapshot with its kind, run, workspace and server, and reads them back', () => {
    const tags = snapshotTags({ kind: 'workspace', run: 'backup-1', workspaceId: 'w1', serverId: 's1' });
    expect(tags).toEqual(['podex', 'kind=workspace', 'run=backup-1', 'workspace=w1', 'server=s1']);
    expect(parseSnapshotTags(tags)).toEqual({ kind: 'workspace', run: 'backup-1', workspaceId: 'w1', serverId: 's1', database: undefined });
    expect(parseSnapshotTags(['kind=other'])).toMatchObject({ kind: undefined });
    expect(() => snapshotTags({ kind: 'database', run: 'a,b' })).toThrow(/comma/);
  });

  it('turns the retention policy into restic forget flags', () => {
    expect(forgetArgs(DEFAULT_RETENTION)).toEqual(['--keep-daily', '7', '--keep-weekly', '4', '--keep-monthly', '6']);
  });

  it.each([
    ['Fatal: wrong password or no key found', 'WrongPassword'],
    ['Fatal: unable to open config file: stat /x/config: no such file or directory\nIs there a repository at the following location?\n/x', 'NoRepository'],
    ['Fatal: unable to open config file: Head "http://h/config": dial tcp 127.0.0.1:1: connect: connection refused', 'RepositoryUnreachable'],
    ['Fatal: unable to create lock in backend: repository is already locked by PID 1', 'RepositoryLocked'],
    ['Fatal: no matching ID found for prefix "deadbeef"', 'SnapshotNotFound'],
    ['Fatal: something else', 'ResticFailed'],
  ])('classifies %j as %s', (stderr, kind) => {
    expect(classifyResticError(stderr)).toBe(kind);
  });

  it('never shows credentials of a repository URL', () => {
    expect(redactRepository('rest:https://user:secret@backup.example:8000/podex')).toBe('rest:https://***@backup.example:8000/podex');
    const msg = resticMessage('Fatal: unable to open config file: Head "https://user:secret@h/config": dial tcp', 'rest:https://user:secret@h/');
    expect(msg).not.toContain('secret');
    expect(msg).toMatch(/^unable to open config file/);
  });

  it('validates the backup settings, naming the variable', () => {
    const base = { DATABASE_URL: 'postgresql://a@b/c', REDIS_URL: 'redis://r', JWT_SECRET_KEY: 'x'.repeat(32), INTERNAL_API_KEY: 'y'.repeat(16), DOCKER_TLS_CA_FILE: 'a', DOCKER_TLS_CERT_FILE: 'b', DOCKER_TLS_KEY_FILE: 'c' };
    expect(parseConfig(base)).toMatchObject({ BACKUP_CRON: '0 3 * * *', BACKUP_CHECK_SUBSET: '10%', BACKUP_KEEP_DAILY: 7, DATA_DIR: '/var/lib/podex' });
    expect(() => parseConfig({ ...base, BACKUP_CRON: 'daily' })).toThrow(/BACKUP_CRON: must be a five-field cron/);
    expect(() => parseConfig({ ...base, BACKUP_CHECK_SUBSET: 'lots' })).toThrow(/BACKUP_CHECK_SUBSET/);
  });
});
