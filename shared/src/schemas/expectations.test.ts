import { describe, expect, it } from 'vitest';
import { SEMVER_PATTERN, validateManifest } from '../index.js';
import { schemaErrorText } from './expectations.js';

describe('schema errors say what was expected', () => {
  it('names a semver version with an example instead of quoting the 300-character expression', () => {
    expect(validateManifest({ name: 'app', version: '1.x', install: 'i.sh' })).toBe(false);
    const message = validateManifest.lastError();
    expect(message).toBe('/version must be a semver version such as 1.2.0');
    expect(message).not.toContain(SEMVER_PATTERN);
  });

  it('never quotes an expression or a format it has no words for', () => {
    expect(schemaErrorText({ keyword: 'pattern', params: { pattern: '^[a-z]{3}$' }, message: 'must match pattern "^[a-z]{3}$"' })).toBe('must be in the expected format');
    expect(schemaErrorText({ keyword: 'format', params: { format: 'uuid' }, message: 'must match format "uuid"' })).toMatch(/^must be a UUID such as /);
    expect(schemaErrorText({ keyword: 'maxLength', params: { limit: 3 }, message: 'must NOT have more than 3 characters' })).toBe('must NOT have more than 3 characters');
  });
});
