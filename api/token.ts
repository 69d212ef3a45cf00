/**
 * Mints an API token for local use:  npm run token -- admin alice [ttl]
 * Signs with JWT_SECRET_KEY from the environment (locally: .stack/secrets.env).
 */
import fs from 'node:fs';
import path from 'node:path';
import { mintToken, type Role } from './auth';

async function main(): Promise<void> {
  const [role, sub, ttl = '12h'] = process.argv.slice(2);
  if ((role !== 'admin' && role !== 'user') || !sub) {
    console.error('usage: npm run token -- admin|user SUBJECT [TTL, e.g. 12h]');
    process.exit(2);
  }
  let secret = process.env.JWT_SECRET_KEY;
  const local = path.join(__dirname, '..', '.stack', 'secrets.env');
  if (!secret && fs.existsSync(local)) secret = /^JWT_SECRET_KEY=(.*)$/m.exec(fs.readFileSync(local, 'utf8'))?.[1];
  if (!secret) throw new Error('JWT_SECRET_KEY is not set');
  process.stdout.write(`${await mintToken(secret, sub, role as Role, ttl)}\n`);
}

main().catch((err) => {
  console.error((err as Error).message);
  process.exit(1);
});
