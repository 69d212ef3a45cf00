import { resolveLogFormat } from './log-format';

describe('resolveLogFormat', () => {
  it('writes pretty lines on a terminal and JSON lines anywhere else when left to auto', () => {
    expect(resolveLogFormat(undefined, true)).toBe('pretty');
    expect(resolveLogFormat('auto', true)).toBe('pretty');
    expect(resolveLogFormat(undefined, false)).toBe('json');
    expect(resolveLogFormat('auto', false)).toBe('json');
    expect(resolveLogFormat('', false)).toBe('json');
  });

  it('follows an explicit LOG_FORMAT whatever stdout is', () => {
    expect(resolveLogFormat('json', true)).toBe('json');
    expect(resolveLogFormat('pretty', false)).toBe('pretty');
  });
});
