import { describe, expect, it } from 'vitest';
import { csvField, toCsv } from './csv';

describe('CSV', () => {
  it('quotes what needs quoting and doubles quotes', () => {
    expect(csvField('ABCDE-12345')).toBe('ABCDE-12345');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField(null)).toBe('');
    expect(csvField(42)).toBe('42');
  });

  it('keeps a spreadsheet from running a cell as a formula', () => {
    expect(csvField('=HYPERLINK("x")')).toBe('"\'=HYPERLINK(""x"")"');
    expect(csvField('+1')).toBe("'+1");
    expect(csvField('-1')).toBe("'-1");
    expect(csvField('@sum')).toBe("'@sum");
  });

  it('writes a header and CRLF-terminated rows', () => {
    expect(toCsv(['code', 'plan'], [['A', 1], ['B', null]])).toBe('code,plan\r\nA,1\r\nB,\r\n');
  });
});
