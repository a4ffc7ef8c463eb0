import { describe, expect, it } from 'vitest';
import en from './en';
import zh from './zh';

function keys(node: object, prefix = ''): string[] {
  return Object.entries(node).flatMap(([key, value]) =>
    typeof value === 'string' ? [prefix + key] : keys(value as object, `${prefix}${key}.`));
}

function placeholders(text: string): string[] {
  return [...text.matchAll(/{{(\w+)}}/g)].map((m) => m[1]).sort();
}

describe('the Chinese texts', () => {
  it('cover every English text, with the same placeholders, none left empty', () => {
    expect(keys(zh)).toEqual(keys(en));
    const get = (tree: object, path: string) => path.split('.').reduce<any>((n, k) => n[k], tree);
    for (const key of keys(en)) {
      expect(get(zh, key), key).not.toBe('');
      expect(placeholders(get(zh, key)), key).toEqual(placeholders(get(en, key)));
    }
  });
});
