import { describe, it } from 'vitest';
import * as errors from './errors.js';
import { expectDeclaredErrors } from './test-support/declared-errors.js';

describe('declared errors', () => {
  it('gives every error class a stable code listed in the README', async () => {
    await expectDeclaredErrors(errors);
  });
});
