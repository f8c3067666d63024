import { describe, it } from 'vitest';
import { expectDeclaredErrors } from '../../shared/src/test-support/declared-errors.js';
import * as errors from './errors.js';

describe('declared errors', () => {
  it('gives every error class a stable code listed in the README', async () => {
    await expectDeclaredErrors(errors, { AgentConfigError: [['x']] });
  });
});
