import { describe, expect, it } from '@jest/globals';
import { checkYamlShape } from '../../../controller/schema/yaml-guard.js';
import { parseDeclarations } from '../../../controller/schema/yaml-declarations.js';

const LIMITS = { maxDepth: 64, maxDocuments: 100 };
const depthOk = (text: string) => checkYamlShape(text, LIMITS).ok;

describe('hostile YAML is refused quickly, with a message', () => {
  it('refuses deep flow nesting, even unclosed, pointing where the limit is crossed', () => {
    const v = checkYamlShape(`a: ${'['.repeat(1_000_000)}`, LIMITS);
    expect(v).toEqual({ ok: false, offset: 3 + 63, message: expect.stringContaining('deeper than 64 levels') });
  });

  it('refuses deep block nesting: compact sequences and indentation', () => {
    expect(depthOk(`${'- '.repeat(100)}x\n`)).toBe(false);
    let indented = '';
    for (let i = 0; i < 100; i++) indented += `${' '.repeat(i)}k${i}:\n`;
    expect(depthOk(indented)).toBe(false);
  });

  it('refuses too many documents', () => {
    const v = checkYamlShape('---\na: 1\n'.repeat(101), LIMITS);
    expect(v.ok).toBe(false);
    expect(!v.ok && v.message).toContain('more than 100 documents');
    expect(checkYamlShape('a: 1\n---\nb: 2\n---\n', LIMITS)).toEqual({ ok: true, documents: 3 });
  });

  it('does not count brackets inside quotes, comments, block scalars or plain scalars', () => {
    const deep = '['.repeat(100);
    expect(depthOk(`a: "${deep}"\nb: '${deep}'\n`)).toBe(true);
    expect(depthOk(`a: 1 # ${deep}\n`)).toBe(true);
    expect(depthOk(`a: |\n  ${deep}\n  more ${deep}\nb: 2\n`)).toBe(true);
    expect(depthOk(`description: don't ${deep}x\n`)).toBe(false); // counted: errs towards refusing
    expect(depthOk(`a: it's fine\nb: [1, [2, [3]]]\n`)).toBe(true);
    expect(depthOk(`a: "multi\n  line ${deep}"\n`)).toBe(true);
    expect(depthOk(`a: 'it''s ${deep}'\n`)).toBe(true);
  });

  it('keeps counting after a quote that is part of a plain scalar', () => {
    // The apostrophe does not open a quoted scalar, so the brackets on the next line still count.
    expect(depthOk(`a: x 'y\nb: ${'['.repeat(100)}\n`)).toBe(false);
    expect(depthOk(`[a:'${'['.repeat(100)}\n`)).toBe(false);
    expect(depthOk(`{"a":'${'['.repeat(100)}'}\n`)).toBe(true);
  });

  it('turns the size cap and the guard into file problems', () => {
    expect(parseDeclarations('a: 1\n'.repeat(100), 'big.yaml', { limits: { maxBytes: 100 } }).problems).toEqual([
      { file: 'big.yaml', line: 1, col: 1, message: 'file is 500 bytes, more than the 100 a declaration file may have' },
    ]);
    expect(parseDeclarations(`apiVersion: x\nspec:\n  a: ${'['.repeat(100)}`, 'deep.yaml').problems).toEqual([
      { file: 'deep.yaml', line: 3, col: 68, message: 'nesting is deeper than 64 levels (65 here); a TunDevice needs about 6, so this is not a declaration' },
    ]);
  });
});
