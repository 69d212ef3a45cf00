import { ConfigError, parseConfig } from './config';

const valid = {
  DATABASE_URL: 'postgresql://u:p@127.0.0.1:5432/db',
  REDIS_URL: 'redis://127.0.0.1:6379/0',
  JWT_SECRET_KEY: 'x'.repeat(32),
  INTERNAL_API_KEY: 'k'.repeat(16),
  DOCKER_TLS_CA_FILE: '/certs/ca.pem',
  DOCKER_TLS_CERT_FILE: '/certs/cert.pem',
  DOCKER_TLS_KEY_FILE: '/certs/key.pem',
};

const PAYLOAD_KEYS = `k1:${'ab'.repeat(32)}`;

function problemsOf(env: Record<string, string | undefined>): string[] {
  try {
    parseConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('parseConfig', () => {
  it('applies defaults to a minimal valid environment', () => {
    const c = parseConfig(valid);
    expect(c.TEMPORAL_ADDRESS).toBe('127.0.0.1:7233');
    expect(c.TEMPORAL_NAMESPACE).toBe('default');
    expect(c.TEMPORAL_TASK_QUEUE).toBe('podex-orchestrator');
    expect(c.PORT).toBe(8080);
    expect(c.HEARTBEAT_INTERVAL_SECONDS).toBe(30);
    expect(c.CORS_ORIGINS).toEqual([]);
  });

  it('names a missing variable', () => {
    const { DATABASE_URL: _drop, ...env } = valid;
    expect(problemsOf(env)).toEqual(['DATABASE_URL: is required']);
  });

  it('names each malformed variable with the reason', () => {
    const problems = problemsOf({ ...valid, JWT_SECRET_KEY: 'short', PORT: '99999', REDIS_URL: 'http://x' });
    expect(problems).toEqual(
      expect.arrayContaining([
        'JWT_SECRET_KEY: must be at least 32 characters',
        expect.stringMatching(/^PORT: /),
        'REDIS_URL: must be a redis:// or rediss:// URL',
      ]),
    );
    expect(problems).toHaveLength(3);
  });

  it('checks cross-field rules', () => {
    expect(problemsOf({ ...valid, TEMPORAL_TLS_CERT_FILE: '/c.pem' })).toEqual([
      'TEMPORAL_TLS_KEY_FILE: must be set together with TEMPORAL_TLS_CERT_FILE',
    ]);
    expect(problemsOf({ ...valid, RESTIC_REPOSITORY: '/backups' })).toEqual([
      'RESTIC_PASSWORD_FILE: is required when RESTIC_REPOSITORY is set',
    ]);
    expect(problemsOf({ ...valid, NODE_ENV: 'production', TEMPORAL_PAYLOAD_KEYS: PAYLOAD_KEYS, CORS_ORIGINS: 'https://a.dev,*' })).toEqual([
      "CORS_ORIGINS: may not contain '*' in production",
    ]);
  });

  it('splits CORS_ORIGINS and treats empty optional values as unset', () => {
    const c = parseConfig({ ...valid, CORS_ORIGINS: 'https://a.dev, https://b.dev', OPENROUTER_API_KEY: '' });
    expect(c.CORS_ORIGINS).toEqual(['https://a.dev', 'https://b.dev']);
    expect(c.OPENROUTER_API_KEY).toBeUndefined();
  });

  it('listens on loopback and trusts no proxy by default; TRUSTED_PROXIES takes addresses and CIDRs; TRUST_PROXY is refused', () => {
    const c = parseConfig(valid);
    expect(c.API_HOST).toBe('127.0.0.1');
    expect(c.TRUSTED_PROXIES).toEqual([]);
    expect(parseConfig({ ...valid, TRUSTED_PROXIES: '172.16.0.0/12, 127.0.0.1,fd00::/8' }).TRUSTED_PROXIES).toEqual(['172.16.0.0/12', '127.0.0.1', 'fd00::/8']);
    expect(problemsOf({ ...valid, TRUSTED_PROXIES: 'proxy.lan' })).toEqual(['TRUSTED_PROXIES.0: each entry must be an IP address or CIDR such as 10.0.0.0/8']);
    expect(problemsOf({ ...valid, TRUSTED_PROXIES: '10.0.0.0/33' })).toHaveLength(1);
    expect(problemsOf({ ...valid, TRUST_PROXY: 'true' })).toEqual(['TRUST_PROXY: is replaced by TRUSTED_PROXIES (the proxy addresses or CIDRs to trust)']);
  });

  it('allows no private provider hosts unless LLM_PROVIDER_ALLOW lists them, and names a malformed entry', () => {
    expect(parseConfig(valid).LLM_PROVIDER_ALLOW).toEqual([]);
    expect(parseConfig({ ...valid, LLM_PROVIDER_ALLOW: 'ollama.lan, 10.0.0.0/8,::1' }).LLM_PROVIDER_ALLOW).toEqual(['ollama.lan', '10.0.0.0/8', '::1']);
    expect(problemsOf({ ...valid, LLM_PROVIDER_ALLOW: '10.0.0.0/40' })).toEqual(['LLM_PROVIDER_ALLOW: must list host names, addresses or CIDR networks, comma-separated']);
  });

  it('audits new servers strictly in production unless STRICT_DAEMON_AUDIT says otherwise; elsewhere only when asked', () => {
    expect(parseConfig({ ...valid, NODE_ENV: 'production', TEMPORAL_PAYLOAD_KEYS: PAYLOAD_KEYS }).STRICT_DAEMON_AUDIT).toBe(true);
    expect(parseConfig({ ...valid, NODE_ENV: 'production', TEMPORAL_PAYLOAD_KEYS: PAYLOAD_KEYS, STRICT_DAEMON_AUDIT: 'false' }).STRICT_DAEMON_AUDIT).toBe(false);
    expect(parseConfig({ ...valid, NODE_ENV: 'development' }).STRICT_DAEMON_AUDIT).toBe(false);
    expect(parseConfig({ ...valid, NODE_ENV: 'test', STRICT_DAEMON_AUDIT: 'true' }).STRICT_DAEMON_AUDIT).toBe(true);
    expect(problemsOf({ ...valid, STRICT_DAEMON_AUDIT: 'yes' })).toEqual([expect.stringMatching(/^STRICT_DAEMON_AUDIT: /)]);
  });

  it('encrypts Temporal payloads: keys required in production, well-formed anywhere; helpers never run the workspace image', () => {
    expect(problemsOf({ ...valid, NODE_ENV: 'production' })).toEqual([expect.stringMatching(/^TEMPORAL_PAYLOAD_KEYS: is required in production/)]);
    expect(parseConfig({ ...valid, TEMPORAL_PAYLOAD_KEYS: `new:${Buffer.alloc(32, 1).toString('base64')}, ${PAYLOAD_KEYS}` }).TEMPORAL_PAYLOAD_KEYS).toBeDefined();
    for (const bad of ['k1', `k1:${'ab'.repeat(16)}`, `${PAYLOAD_KEYS},${PAYLOAD_KEYS}`]) expect(problemsOf({ ...valid, TEMPORAL_PAYLOAD_KEYS: bad })).toEqual([expect.stringMatching(/^TEMPORAL_PAYLOAD_KEYS: /)]);
    expect(problemsOf({ ...valid, TOOLS_IMAGE: 'podex/workspace:latest' })).toEqual([expect.stringMatching(/^TOOLS_IMAGE: must not be the workspace image/)]);
  });
});
