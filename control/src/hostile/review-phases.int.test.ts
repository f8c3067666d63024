import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '../test-support/devices.js';
import { startTestServer, type TestServer } from '../test-support/test-server.js';

// DESIGN §5: a phase's percent is cumulative; percents rise strictly and the
// last is 100, or the request is a 400 saying so.
describe('rollout phases that do not rise strictly to 100', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  const lists = [[50], [10, 50], [10, 40, 50], [1, 99]];
  for (const percents of lists) {
    it(`answers 400 naming body.rollout.phases for ${percents.join(', ')}`, async () => {
      const res = await api('POST', `${server.httpUrl}/api/v1/deployments`, server.adminHeaders, {
        bundleId: '00000000-0000-4000-8000-000000000000',
        target: { all: true },
        rollout: { phases: percents.map((percent) => ({ percent })) },
      });
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ statusCode: 400, code: 'KX_VALIDATION' });
      expect(res.body.message).toContain('body.rollout.phases');
    });
  }
});
