import { charsetOf, jsonDepth, MAX_JSON_DEPTH, unreadableBody } from './body';

describe('jsonDepth', () => {
  it('counts nesting outside strings only', () => {
    expect(jsonDepth('{}')).toBe(1);
    expect(jsonDepth('{"a":[1,{"b":[]}]}')).toBe(4);
    expect(jsonDepth('{"a":"[[[[{{{{"}')).toBe(1);
    expect(jsonDepth('{"a":"\\"[[[["}')).toBe(1);
    expect(jsonDepth('["\\\\",[[]]]')).toBe(3);
  });

  it('stops counting once past the limit (a 1 MB body of brackets costs one pass at most)', () => {
    const deep = '['.repeat(500_000) + ']'.repeat(500_000);
    expect(jsonDepth(deep, MAX_JSON_DEPTH)).toBe(MAX_JSON_DEPTH + 1);
    expect(jsonDepth(Buffer.from(deep))).toBe(500_000);
  });
});

describe('what a JSON body may come as', () => {
  it('reads the charset parameter, quoted or not', () => {
    expect(charsetOf('application/json')).toBeUndefined();
    expect(charsetOf('application/json; charset=UTF-8')).toBe('utf-8');
    expect(charsetOf('application/json;charset="latin1"')).toBe('latin1');
    expect(charsetOf(undefined)).toBeUndefined();
  });

  it.each([
    [{}, undefined],
    [{ 'content-encoding': 'gzip' }, undefined],
    [{ 'content-encoding': 'Deflate' }, undefined],
    [{ 'content-encoding': 'identity', 'content-type': 'application/json; charset=utf-8' }, undefined],
    [{ 'content-encoding': 'br' }, 'unsupported_encoding'],
    [{ 'content-encoding': 'compress' }, 'unsupported_encoding'],
    [{ 'content-encoding': 'zstd' }, 'unsupported_encoding'],
    [{ 'content-encoding': 'gzip, gzip' }, 'unsupported_encoding'],
    [{ 'content-type': 'application/json; charset=latin1' }, 'unsupported_charset'],
    // body-parser itself takes only utf-*: the spelling without the dash would be refused there, with a less clear message.
    [{ 'content-type': 'application/json; charset=utf8' }, 'unsupported_charset'],
    [{ 'content-type': 'application/json; charset=utf-16' }, 'unsupported_charset'],
    [{ 'content-type': 'application/json; charset=bogus' }, 'unsupported_charset'],
  ])('%j → %s', (headers, code) => {
    const e = unreadableBody(headers);
    expect(e?.code).toBe(code);
    if (e) expect(e.status).toBe(415);
    if (code === 'unsupported_encoding') expect(e?.headers).toEqual({ 'Accept-Encoding': 'gzip, deflate' });
  });
});
