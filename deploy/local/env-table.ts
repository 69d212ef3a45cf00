/**
 * `npm run docs:env`: writes README's settings table from the config schema (domain/config.ts)
 * and the doc comment above each of its fields; `-- --check` only says whether it is current.
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { envSchema } from '../../domain/config';
import { envRows, renderEnvTable, spliceEnvTable, type EnvDoc } from '../../domain/env-table';

const ROOT = path.join(__dirname, '..', '..');
export const CONFIG_SOURCE = path.join(ROOT, 'domain', 'config.ts');
export const README = path.join(ROOT, 'README.md');

/** The object literal envSchema is built from: the first `z.object({…})` in its initializer. */
function schemaLiteral(file: ts.SourceFile): ts.ObjectLiteralExpression {
  let found: ts.ObjectLiteralExpression | undefined;
  const inside = (node: ts.Node): void => {
    if (found) return;
    if (ts.isCallExpression(node) && /\bobject$/.test(node.expression.getText(file)) && node.arguments[0] && ts.isObjectLiteralExpression(node.arguments[0])) {
      found = node.arguments[0];
      return;
    }
    ts.forEachChild(node, inside);
  };
  const top = (node: ts.Node): void => {
    if (ts.isVariableDeclaration(node) && node.name.getText(file) === 'envSchema' && node.initializer) inside(node.initializer);
    else ts.forEachChild(node, top);
  };
  top(file);
  if (!found) throw new Error('domain/config.ts: envSchema is not built from z.object({…})');
  return found;
}

/**
 * The doc comment (`/** … *\/`) above each field of envSchema's object, keyed by variable name;
 * the comments stay where a reader of the schema sees them, and the table reads them from there.
 */
export function envDocComments(source: string): Record<string, EnvDoc> {
  const file = ts.createSourceFile('config.ts', source, ts.ScriptTarget.ES2022, true);
  const docs: Record<string, EnvDoc> = {};
  for (const prop of schemaLiteral(file).properties) {
    if (!ts.isPropertyAssignment(prop)) continue;
    const comment = (ts.getLeadingCommentRanges(source, prop.getFullStart()) ?? []).filter((r) => source.startsWith('/**', r.pos)).at(-1);
    if (!comment) continue;
    const text = source
      .slice(comment.pos + 3, comment.end - 2)
      .split('\n')
      .map((line) => line.replace(/^\s*\*(?!\/) ?/, '').trim())
      .join(' ')
      .trim();
    const secret = /(^|\s)@secret\b/.test(text);
    docs[prop.name.getText(file)] = { text: text.replace(/(^|\s)@secret\b/, '').trim(), secret };
  }
  return docs;
}

/** The table as README must hold it, from the schema and the config module's source. */
export function envTable(configSource: string = fs.readFileSync(CONFIG_SOURCE, 'utf8')): string {
  return renderEnvTable(envRows(envSchema.in, envDocComments(configSource)));
}

function main(): void {
  const readme = fs.readFileSync(README, 'utf8');
  const next = spliceEnvTable(readme, envTable());
  if (process.argv.includes('--check')) {
    if (next === readme) return;
    console.error("README's settings table differs from domain/config.ts: run npm run docs:env");
    process.exit(1);
  }
  if (next !== readme) fs.writeFileSync(README, next);
  console.log(next === readme ? 'README settings table is current' : 'README settings table written');
}

if (require.main === module) main();
