import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const VERSION = 1;

/** A 32-byte AES-256 key written as 64 hex digits or base64 (settings that hold keys use either). */
export function parseKey32(text: string): Buffer | undefined {
  const raw = /^[0-9a-f]{64}$/i.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
  return raw.length === 32 ? raw : undefined;
}

/**
 * AES-256-GCM for secrets at rest (users' provider keys). The row's owner is bound in as
 * associated data, so a ciphertext copied to another user's row does not open.
 * Layout: version (1) | IV (12) | tag (16) | ciphertext.
 */
export class SecretBox {
  private readonly key: Buffer;

  constructor(key: string) {
    const raw = parseKey32(key);
    if (!raw) throw new Error('the encryption key must be 32 bytes (64 hex characters or base64)');
    this.key = raw;
  }

  seal(plain: string, context: string): Buffer {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(Buffer.from(context));
    const body = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return Buffer.concat([Buffer.from([VERSION]), iv, c.getAuthTag(), body]);
  }

  open(sealed: Uint8Array, context: string): string {
    const b = Buffer.from(sealed);
    if (b[0] !== VERSION) throw new Error('unknown secret format');
    const d = createDecipheriv('aes-256-gcm', this.key, b.subarray(1, 13));
    d.setAAD(Buffer.from(context));
    d.setAuthTag(b.subarray(13, 29));
    return Buffer.concat([d.update(b.subarray(29)), d.final()]).toString('utf8');
  }
}
