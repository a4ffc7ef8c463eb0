import { describe, expect, it } from 'vitest';
import en from './en';

// every source file's text, to find the keys it asks for
const sources = import.meta.glob('../**/*.tsx', { query: '?raw', import: 'default', eager: true }) as Record<string, string>;

function has(key: string): boolean {
  const parts = key.split('.');
  const last = parts.pop()!;
  const node = parts.reduce<any>((n, k) => (n && typeof n === 'object' ? n[k] : undefined), en);
  return Boolean(node) && (typeof node[last] === 'string' || typeof node[`${last}_other`] === 'string');
}

describe('the texts the pages ask for', () => {
  it('are all in the English catalogue (and so, by catalogue.test, in Chinese)', () => {
    const missing: string[] = [];
    let checked = 0;
    for (const [file, text] of Object.entries(sources)) {
      if (file.includes('.test.')) continue;
      for (const match of text.matchAll(/\bt\(\s*'([a-zA-Z]+(?:\.[a-zA-Z0-9_]+)+)'/g)) {
        checked += 1;
        if (!has(match[1])) missing.push(`${file}: ${match[1]}`);
      }
      for (const match of text.matchAll(/\? '([a-z]+\.[a-zA-Z0-9_.]+)' : '([a-z]+\.[a-zA-Z0-9_.]+)'/g)) {
        for (const key of [match[1], match[2]]) if (!has(key)) missing.push(`${file}: ${key}`);
      }
    }
    expect(missing).toEqual([]);
    expect(checked).toBeGreaterThan(300); // the scan does find the keys
  });
});
