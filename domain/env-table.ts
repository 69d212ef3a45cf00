/**
 * README's table of every setting, built from the config schema itself (names, defaults, allowed
 * values, required-ness) and each field's doc comment, so the table cannot drift from what the
 * processes accept. `npm run docs:env` writes it; test/env-table.test.ts fails when it differs.
 */
import { z } from 'zod';

export const TABLE_START = '<!-- env-table:start -->';
export const TABLE_END = '<!-- env-table:end -->';

/** A field's doc comment; `@secret` marks a value that must never be printed. */
export interface EnvDoc {
  text: string;
  secret: boolean;
}

export interface EnvRow {
  name: string;
  required: boolean;
  /** The default as the environment would spell it; undefined: none. */
  defaultValue?: string;
  allowed: string;
  description: string;
  secret: boolean;
}

// Named like a credential: its default stays hidden even if nobody tagged it @secret.
const SECRET_NAME = /(SECRET|TOKEN|PASSWORD|_KEY|_KEYS)$/;

/** The README anchor of a variable's row: link `[X](#x)` to it. */
export const envAnchor = (name: string) => name.toLowerCase();

interface JsonField {
  type?: string;
  enum?: unknown[];
  default?: unknown;
  minimum?: number;
  exclusiveMinimum?: number;
  maximum?: number;
  format?: string;
  pattern?: string;
  anyOf?: JsonField[];
}

function allowedValues(f: JsonField, forbidden: boolean): string {
  if (forbidden) return 'must not be set';
  const field = f.anyOf?.[0] ?? f;
  if (field.enum) return field.enum.map((v) => `\`${String(v)}\``).join(', ');
  if (field.type === 'integer' || field.type === 'number') {
    const min = field.minimum ?? (field.exclusiveMinimum !== undefined ? field.exclusiveMinimum + (field.type === 'integer' ? 1 : 0) : undefined);
    const max = field.maximum !== undefined && field.maximum < Number.MAX_SAFE_INTEGER ? field.maximum : undefined;
    const kind = field.type === 'integer' ? 'integer' : 'number';
    if (min !== undefined && max !== undefined) return `${kind} ${min}–${max}`;
    if (min !== undefined) return `${kind} ≥ ${min}`;
    return max !== undefined ? `${kind} ≤ ${max}` : kind;
  }
  if (field.format === 'uri') return 'URL';
  if (field.format === 'starts_with' && field.pattern === '^\\/.*') return 'absolute path';
  return '';
}

/** One row per field of the schema's object, in the schema's order. */
export function envRows(schema: z.ZodObject, docs: Record<string, EnvDoc>): EnvRow[] {
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as { properties: Record<string, JsonField>; required?: string[] };
  return Object.keys(schema.shape).map((name) => {
    const field = json.properties[name] ?? {};
    const doc = docs[name];
    const def = (schema.shape[name] as z.ZodType)._zod.def as { type: string; innerType?: z.ZodType };
    // z.undefined().optional(): a retired variable whose presence is an error.
    const forbidden = def.type === 'optional' && def.innerType?._zod.def.type === 'undefined';
    return {
      name,
      required: json.required?.includes(name) ?? false,
      defaultValue: field.default === undefined ? undefined : String(field.default),
      allowed: allowedValues(field, forbidden),
      description: doc?.text ?? '',
      secret: Boolean(doc?.secret) || SECRET_NAME.test(name),
    };
  });
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');

function defaultCell(row: EnvRow): string {
  if (row.required) return '**required**';
  if (row.defaultValue === undefined) return '';
  if (row.secret) return '(secret, not shown)';
  return row.defaultValue === '' ? '`""`' : `\`${cell(row.defaultValue)}\``;
}

/** The markdown table (without markers). */
export function renderEnvTable(rows: EnvRow[]): string {
  const lines = ['| Variable | Default | Allowed | What it sets |', '| --- | --- | --- | --- |'];
  for (const row of rows) {
    const name = `<a id="${envAnchor(row.name)}"></a>\`${row.name}\`${row.secret ? ' (secret)' : ''}`;
    lines.push(`| ${name} | ${defaultCell(row)} | ${cell(row.allowed)} | ${cell(row.description)} |`);
  }
  return lines.join('\n');
}

/** `text` with what lies between the markers replaced by `table`; throws when the markers are missing. */
export function spliceEnvTable(text: string, table: string): string {
  const start = text.indexOf(TABLE_START);
  const end = text.indexOf(TABLE_END);
  if (start < 0 || end < start) throw new Error(`README needs ${TABLE_START} … ${TABLE_END} around the settings table`);
  return `${text.slice(0, start + TABLE_START.length)}\n${table}\n${text.slice(end)}`;
}
