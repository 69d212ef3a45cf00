import { randomBytes } from 'node:crypto';
import { defaultPayloadConverter } from '@temporalio/common';
import { ENCRYPTED_ENCODING, EncryptionCodec, KEY_ID_METADATA, parsePayloadKeys, payloadDataConverter } from './payload-codec';

const key = () => randomBytes(32).toString('base64');
const prompt = { messages: [{ role: 'user', content: 'my secret plan for the launch' }] };

describe('the payload codec', () => {
  const [oldKey, newKey] = [key(), key()];

  it('encrypts with the first key, names it, and decodes to the same payload', async () => {
    const codec = new EncryptionCodec(parsePayloadKeys(`k2:${newKey},k1:${oldKey}`));
    const plain = defaultPayloadConverter.toPayload(prompt);
    const [sealed] = await codec.encode([plain]);
    expect(Buffer.from(sealed.metadata!.encoding!).toString()).toBe(ENCRYPTED_ENCODING);
    expect(Buffer.from(sealed.metadata![KEY_ID_METADATA]!).toString()).toBe('k2');
    expect(Buffer.from(sealed.data!).toString('latin1')).not.toContain('secret plan');
    const [opened] = await codec.decode([sealed]);
    expect(defaultPayloadConverter.fromPayload(opened)).toEqual(prompt);
    // A fresh nonce each time: the same payload never encrypts alike.
    expect(Buffer.from((await codec.encode([plain]))[0].data!).equals(Buffer.from(sealed.data!))).toBe(false);
  });

  it('after a rotation, payloads encoded with the old key still decode; unencrypted ones pass through', async () => {
    const before = new EncryptionCodec(parsePayloadKeys(`k1:${oldKey}`));
    const after = new EncryptionCodec(parsePayloadKeys(`k2:${newKey},k1:${oldKey}`));
    const [old] = await before.encode([defaultPayloadConverter.toPayload(prompt)]);
    expect(defaultPayloadConverter.fromPayload((await after.decode([old]))[0])).toEqual(prompt);
    const clear = defaultPayloadConverter.toPayload('recorded before encryption');
    expect(await after.decode([clear])).toEqual([clear]);
    // Dropping the old key too early is an error naming the key id, never garbage.
    await expect(new EncryptionCodec(parsePayloadKeys(`k2:${newKey}`)).decode([old])).rejects.toThrow(/"k1"/);
  });

  it('refuses a tampered payload or one relabelled to another key', async () => {
    const codec = new EncryptionCodec(parsePayloadKeys(`k2:${newKey},k1:${newKey}`));
    const [sealed] = await codec.encode([defaultPayloadConverter.toPayload(prompt)]);
    const flipped = Buffer.from(sealed.data!);
    flipped[20] ^= 1;
    await expect(codec.decode([{ ...sealed, data: flipped }])).rejects.toThrow();
    await expect(codec.decode([{ ...sealed, metadata: { ...sealed.metadata, [KEY_ID_METADATA]: Buffer.from('k1') } }])).rejects.toThrow();
  });

  it('reads keys as id:key pairs (base64 or hex, 32 bytes) and refuses anything else', () => {
    expect(parsePayloadKeys(`a:${'ab'.repeat(32)}, b:${key()}`).map((k) => [k.id, k.key.length])).toEqual([
      ['a', 32],
      ['b', 32],
    ]);
    for (const bad of ['', 'nokey', `a:${randomBytes(16).toString('base64')}`, `a:${key()},a:${key()}`, `:${key()}`]) expect(() => parsePayloadKeys(bad)).toThrow();
    expect(payloadDataConverter(undefined)).toBeUndefined();
  });
});
