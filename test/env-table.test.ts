import fs from 'node:fs';
import { z } from 'zod';
import { envSchema } from '../domain/config';
import { envAnchor, envRows, renderEnvTable, spliceEnvTable, TABLE_END, TABLE_START } from '../domain/env-table';
import { CONFIG_SOURCE, README, envDocComments, envTable } from '../deploy/local/env-table';

const readme = () => fs.readFileSync(README, 'utf8');
const names = Object.keys(envSchema.in.shape);

describe("README's settings table", () => {
  it('is the table generated from domain/config.ts (after changing a setting: npm run docs:env)', () => {
    const text = readme();
    const start = text.indexOf(TABLE_START);
    const end = text.indexOf(TABLE_END);
    expect(start).toBeGreaterThan(0);
    expect(text.slice(start + TABLE_START.length, end).trim()).toBe(envTable());
  });

  it('lists every variable of the schema, each with the doc comment above its field', () => {
    const docs = envDocComments(fs.readFileSync(CONFIG_SOURCE, 'utf8'));
    expect(names.filter((n) => !docs[n]?.text)).toEqual([]);
    expect(Object.keys(docs).sort()).toEqual([...names].sort());
    const table = envTable();
    expect(names.filter((n) => !table.includes(`<a id="${envAnchor(n)}"></a>\`${n}\``))).toEqual([]);
  });

  it('is linked from the text: every link to a setting lands on its row', () => {
    const text = readme();
    const anchors = new Set(names.map(envAnchor));
    const links = [...text.matchAll(/\]\(#([a-z0-9]+(?:_[a-z0-9]+)+)\)/g)].map((m) => m[1]);
    expect(links).toEqual(expect.arrayContaining(['rate_limit_per_minute', 'rate_limit_per_user_per_minute', 'rate_limit_internal_per_minute']));
    expect(links.filter((l) => !anchors.has(l))).toEqual([]);
  });
});

describe('the settings table generator', () => {
  const schema = z.object({
    MODE: z.enum(['a', 'b']).default('a'),
    URL: z.string().url(),
    PORT: z.coerce.number().int().min(1).max(65535).default(8080),
    COUNT: z.coerce.number().int().positive().default(3),
    RATIO: z.coerce.number().min(0.5).max(2).default(1),
    HOME_DIR: z.string().startsWith('/').default('/var/lib/x'),
    NOTE: z.string().optional(),
    OLD_NAME: z.undefined().optional(),
  });
  const docs = { MODE: { text: 'Which mode | pipe', secret: false } };

  it('shows what the schema says: defaults, allowed values, required-ness', () => {
    const rows = envRows(schema, docs);
    expect(rows.map((r) => [r.name, r.required, r.defaultValue, r.allowed])).toEqual([
      ['MODE', false, 'a', '`a`, `b`'],
      ['URL', true, undefined, 'URL'],
      ['PORT', false, '8080', 'integer 1–65535'],
      ['COUNT', false, '3', 'integer ≥ 1'],
      ['RATIO', false, '1', 'number 0.5–2'],
      ['HOME_DIR', false, '/var/lib/x', 'absolute path'],
      ['NOTE', false, undefined, ''],
      ['OLD_NAME', false, undefined, 'must not be set'],
    ]);
    const table = renderEnvTable(rows);
    expect(table).toContain('| <a id="mode"></a>`MODE` | `a` | `a`, `b` | Which mode \\| pipe |');
    expect(table).toContain('| <a id="url"></a>`URL` | **required** | URL |  |');
  });

  it('never prints a secret default, whether tagged @secret or named like a credential', () => {
    const secrets = z.object({
      SIGNING_SEED: z.string().default('seed-value-123'),
      WEBHOOK_TOKEN: z.string().default('token-value-456'),
      BACKUP_PASSWORD: z.string().default('password-value-789'),
      DB_KEY: z.string().default('key-value-000'),
      PLAIN: z.string().default('plain-value'),
    });
    const table = renderEnvTable(envRows(secrets, { SIGNING_SEED: { text: 'Seeds signatures.', secret: true } }));
    for (const v of ['seed-value-123', 'token-value-456', 'password-value-789', 'key-value-000']) expect(table).not.toContain(v);
    expect(table).toContain('`SIGNING_SEED` (secret) | (secret, not shown) |');
    expect(table).toContain('`plain-value`');
  });

  it('reads multi-line doc comments and the @secret tag, and skips plain comments', () => {
    const source = [
      "import { z } from 'zod';",
      'const other = z.object({ /** not this one */ X: z.string() });',
      'export const envSchema = z',
      '  .object({',
      '    /**',
      '     * First line',
      '     * and the second.',
      '     */',
      '    A: z.string(),',
      '    // a plain comment',
      '    B: z.string(),',
      '    /** Signs tokens. @secret */',
      '    C: z.string(),',
      '  })',
      '  .superRefine(() => undefined);',
    ].join('\n');
    expect(envDocComments(source)).toEqual({ A: { text: 'First line and the second.', secret: false }, C: { text: 'Signs tokens.', secret: true } });
  });

  it('replaces only what lies between the markers, and refuses a README without them', () => {
    const text = `# T\n\nbefore\n${TABLE_START}\nold\n${TABLE_END}\nafter\n`;
    expect(spliceEnvTable(text, '| new |')).toBe(`# T\n\nbefore\n${TABLE_START}\n| new |\n${TABLE_END}\nafter\n`);
    expect(() => spliceEnvTable('# T\n', '| new |')).toThrow(/env-table:start/);
  });
});
