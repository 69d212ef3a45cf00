/**
 * Encryption of every payload the orchestrator hands Temporal (workflow and activity inputs
 * and results, signals, queries, heartbeat details, memos): users' prompts and answers pass
 * through workflows, and Temporal's histories must not hold them in clear. AES-256-GCM, a
 * fresh 96-bit nonce per payload, the key id in the payload's metadata so keys can rotate:
 * the first key encodes, every listed key decodes. Payloads without our encoding (recorded
 * before encryption) pass through unchanged.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { parseKey32 } from './secret-box';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export interface PayloadKey {
  id: string;
  key: Buffer;
}

/** `TEMPORAL_PAYLOAD_KEYS`: `id:key[,id:key…]`, each key 32 bytes in base64 or hex; the first encodes. */
export function parsePayloadKeys(text: string): PayloadKey[] {
  const keys = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const colon = entry.indexOf(':');
      const id = entry.slice(0, colon);
      const raw = entry.slice(colon + 1);
      if (colon < 1 || !/^[A-Za-z0-9._-]{1,64}$/.test(id)) throw new Error('each entry must be id:key with an id of letters, digits, ".", "_" or "-"');
      const key = parseKey32(raw);
      if (!key) throw new Error(`key ${id} must be 32 bytes (base64 or 64 hex digits)`);
      return { id, key };
    });
  if (keys.length === 0) throw new Error('must list at least one id:key');
  if (new Set(keys.map((k) => k.id)).size !== keys.length) throw new Error('key ids must be unique');
  return keys;
}

const utf8 = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString('utf8') : undefined);

export class EncryptionCodec implements PayloadCodec {
  private readonly byId: Map<string, Buffer>;
  constructor(private readonly keys: PayloadKey[]) {
    if (keys.length === 0) throw new Error('EncryptionCodec needs a key');
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const { id, key } = this.keys[0];
    return payloads.map((p) => {
      const plain = temporal.api.common.v1.Payload.encode(p).finish();
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, nonce);
      // The key id is authenticated with the data: a payload cannot be relabelled to another key.
      cipher.setAAD(Buffer.from(id));
      const sealed = Buffer.concat([nonce, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return { metadata: { encoding: utf8(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: utf8(id) }, data: sealed };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      if (text(p.metadata?.encoding) !== ENCRYPTED_ENCODING) return p;
      const id = text(p.metadata?.[KEY_ID_METADATA]) ?? '';
      const key = this.byId.get(id);
      if (!key) throw new Error(`payload encrypted with key id "${id}", which TEMPORAL_PAYLOAD_KEYS does not list`);
      const data = Buffer.from(p.data ?? new Uint8Array());
      if (data.length < NONCE_BYTES + TAG_BYTES) throw new Error('encrypted payload is too short');
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, NONCE_BYTES));
      decipher.setAAD(Buffer.from(id));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      const plain = Buffer.concat([decipher.update(data.subarray(NONCE_BYTES, data.length - TAG_BYTES)), decipher.final()]);
      return temporal.api.common.v1.Payload.decode(plain) as Payload;
    });
  }
}

/** The data converter of every Temporal client and worker of the process: payloads encrypted when keys are configured. */
export function payloadDataConverter(keysSetting: string | undefined): DataConverter | undefined {
  return keysSetting ? { payloadCodecs: [new EncryptionCodec(parsePayloadKeys(keysSetting))] } : undefined;
}
