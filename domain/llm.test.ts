import { attempts, costOf, findModel, fromUnits, holdOf, promptTokensAtMost, showUsd, tokensOfText, toUnits } from './llm';

describe('LLM routing and pricing', () => {
  it('maps the seed aliases and knows their OpenRouter ids', () => {
    expect(findModel('claude-3.5-sonnet')?.openrouter).toBe('anthropic/claude-3.5-sonnet');
    expect(findModel('anthropic/claude-3.5-sonnet')?.alias).toBe('claude-3.5-sonnet');
    expect(findModel('gpt-17')).toBeUndefined();
  });

  it('routes own keys first in the seed order, then OpenRouter, then the fallback models', () => {
    const claude = findModel('claude-3.5-sonnet')!;
    const mini = findModel('gpt-4o-mini')!;
    expect(attempts(claude, new Set(['openai', 'anthropic', 'ollama']), [mini]).map((a) => `${a.provider}:${a.model}:${a.billed}`)).toEqual([
      'anthropic:claude-3-5-sonnet-latest:false',
      'openrouter:anthropic/claude-3.5-sonnet:true',
      'openai:gpt-4o-mini:false',
      'openrouter:openai/gpt-4o-mini:true',
    ]);
    expect(attempts(findModel('llama-3.1-70b')!, new Set(['ollama'])).map((a) => a.provider)).toEqual(['ollama', 'openrouter']);
    expect(attempts(claude, new Set()).map((a) => a.provider)).toEqual(['openrouter']);
  });

  it('prices exactly, with the markup, to 10^-12 USD rounded up', () => {
    expect(costOf({ prompt: '0.000003', completion: '0.000015' }, 1234, 567)).toEqual({ upstreamUsd: '0.012207', chargedUsd: '0.0146484' });
    expect(costOf({ prompt: '0.00000015', completion: '0.0000006' }, 1, 1)).toEqual({ upstreamUsd: '0.00000075', chargedUsd: '0.0000009' });
    expect(costOf({ prompt: '0', completion: '0' }, 10, 10).chargedUsd).toBe('0.000000');
    expect(fromUnits(toUnits('0.0000005'))).toBe('0.000001');
    expect(fromUnits(toUnits('0.00000049'))).toBe('0.000000');
    expect(showUsd('4.985351600000')).toBe('4.9853516');
    expect(showUsd('10')).toBe('10.000000');
    expect(() => toUnits('1e-6')).toThrow(/decimal/);
  });

  it('charges a call below a micro-dollar, never $0', () => {
    // One token at $0.00000015 × 1.2 = $0.00000018: it rounded to $0.000000 before.
    expect(costOf({ prompt: '0.00000015', completion: '0.0000006' }, 1, 0).chargedUsd).toBe('0.00000018');
    // A markup that leaves digits past 10^-12 rounds up, not down to nothing.
    expect(costOf({ prompt: '0.000000000001', completion: '0' }, 1, 0, '0.5').chargedUsd).toBe('0.000000000001');
  });

  it('holds at least what the call can cost', () => {
    const messages = [{ role: 'user', content: 'héllo wörld' }];
    // Never fewer tokens than a byte each plus framing: no tokenizer counts more.
    expect(promptTokensAtMost({ messages })).toBeGreaterThanOrEqual(Buffer.byteLength('héllo wörld'));
    const price = { prompt: '0.000003', completion: '0.000015' };
    const hold = holdOf(price, promptTokensAtMost({ messages }), 1000, '1.2');
    expect(Number(hold)).toBeGreaterThanOrEqual(Number(costOf(price, promptTokensAtMost({ messages }), 1000, '1.2').chargedUsd));
    expect(tokensOfText('abcdefgh')).toBe(2);
    expect(tokensOfText('ab', 3)).toBe(3);
  });
});
