/**
 * The workspace-server Docker daemon hardening of seed Task 5.4, as checks on a daemon.json
 * (the file deploy/servers/workspace/daemon.json ships). No I/O.
 */
export interface DaemonCheck {
  key: string;
  why: string;
  ok: (v: unknown) => boolean;
}

const isTrue = (v: unknown) => v === true;

export const DAEMON_HARDENING: readonly DaemonCheck[] = [
  { key: 'runtimes.runsc.path', why: 'gVisor is installed as a runtime', ok: (v) => v === '/usr/bin/runsc' },
  { key: 'default-runtime', why: 'every container runs under gVisor unless told otherwise', ok: (v) => v === 'runsc' },
  { key: 'tls', why: 'the API speaks TLS', ok: isTrue },
  { key: 'tlsverify', why: 'clients must present a certificate from our CA (mutual TLS)', ok: isTrue },
  { key: 'tlscacert', why: 'the fleet CA', ok: (v) => typeof v === 'string' && v.startsWith('/etc/docker/') },
  { key: 'tlscert', why: 'the server certificate', ok: (v) => typeof v === 'string' && v.startsWith('/etc/docker/') },
  { key: 'tlskey', why: 'the server key', ok: (v) => typeof v === 'string' && v.startsWith('/etc/docker/') },
  { key: 'hosts', why: 'TCP only on the TLS port 2376, plus the local socket', ok: (v) => Array.isArray(v) && v.every((h) => h === 'unix:///var/run/docker.sock' || /^tcp:\/\/[^:]+:2376$/.test(String(h))) },
  { key: 'icc', why: 'no inter-container communication on the default bridge', ok: (v) => v === false },
  { key: 'userns-remap', why: 'container root is an unprivileged host user', ok: (v) => v === 'default' },
  { key: 'no-new-privileges', why: 'processes cannot gain privileges', ok: isTrue },
  { key: 'seccomp-profile', why: "Docker's default seccomp profile (never unconfined)", ok: (v) => typeof v === 'string' && v !== 'unconfined' },
  { key: 'log-driver', why: 'local JSON logs', ok: (v) => v === 'json-file' },
  { key: 'log-opts.max-size', why: 'logs rotate', ok: (v) => typeof v === 'string' && /^\d+[kmg]$/.test(v) },
  { key: 'log-opts.max-file', why: 'a bounded number of log files', ok: (v) => typeof v === 'string' && Number(v) > 0 && Number(v) <= 10 },
  { key: 'storage-driver', why: 'overlay2', ok: (v) => v === 'overlay2' },
  { key: 'live-restore', why: 'containers survive a daemon restart', ok: isTrue },
];

/** Each check's outcome for a parsed daemon.json; a missing key fails its check. */
export function checkDaemonJson(config: Record<string, unknown>): { key: string; ok: boolean; value: unknown; why: string }[] {
  const get = (path: string) => path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), config);
  return DAEMON_HARDENING.map((c) => {
    const value = get(c.key);
    return { key: c.key, ok: c.ok(value), value, why: c.why };
  });
}
