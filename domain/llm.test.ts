import { attempts, costOf, findModel, fromUnits, toUnits } from './llm';

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

  it('prices exactly, with the markup, rounded half up to the micro-dollar', () => {
    expect(costOf({ prompt: '0.000003', completion: '0.000015' }, 1234, 567)).toEqual({ upstreamUsd: '0.012207', chargedUsd: '0.014648' });
    expect(costOf({ prompt: '0.00000015', completion: '0.0000006' }, 1, 1)).toEqual({ upstreamUsd: '0.000001', chargedUsd: '0.000001' });
    expect(costOf({ prompt: '0', completion: '0' }, 10, 10).chargedUsd).toBe('0.000000');
    expect(fromUnits(toUnits('0.0000005'))).toBe('0.000001');
    expect(fromUnits(toUnits('0.00000049'))).toBe('0.000000');
    expect(() => toUnits('1e-6')).toThrow(/decimal/);
  });
});
