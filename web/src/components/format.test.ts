import { describe, expect, it } from 'vitest';
import { bytes, daysUntil } from './format';

describe('daysUntil', () => {
  const now = new Date('2026-11-30T23:59:00Z');
  it('counts whole UTC days, 0 on the last day', () => {
    expect(daysUntil('2026-12-30', now)).toBe(30);
    expect(daysUntil('2026-11-30', now)).toBe(0);
    expect(daysUntil('2026-11-29', now)).toBe(-1);
  });
});

describe('bytes', () => {
  it('uses binary units', () => {
    expect(bytes(0, 'en')).toBe('0 B');
    expect(bytes(1536, 'en')).toBe('1.5 KiB');
    expect(bytes(10 * 1024 ** 3, 'en')).toBe('10 GiB');
  });
});
