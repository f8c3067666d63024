import { SEMVER_PATTERN } from '@kernex/shared';
import { describe, expect, it } from 'vitest';
import { installedBundles, parseBundleRef } from './bundles.command.js';

describe('bundle references on the command line (DESIGN §5: name@version wherever a bundle id is)', () => {
  it('takes name@version and a bundle id', () => {
    expect(parseBundleRef('app@1.2.0')).toEqual({ name: 'app', version: '1.2.0' });
    expect(parseBundleRef('web.app@2.0.0-rc.1+b5')).toEqual({ name: 'web.app', version: '2.0.0-rc.1+b5' });
    expect(parseBundleRef('2861e1f1-14b1-421d-9fb5-8828877cb4f1')).toEqual({ id: '2861e1f1-14b1-421d-9fb5-8828877cb4f1' });
  });

  it('refuses a bad version or id saying what was expected, not the expression', () => {
    expect(() => parseBundleRef('app@1.x')).toThrow("'app@1.x': '1.x' is not a version: expected a semver version such as 1.2.0");
    expect(() => parseBundleRef('app@1.x')).not.toThrow(SEMVER_PATTERN);
    expect(() => parseBundleRef('latest')).toThrow(/expected name@version such as app@1\.2\.0, or a bundle id/);
    expect(() => parseBundleRef('../x@1.0.0')).toThrow(/is not a bundle name: expected a bundle name such as web-app/);
  });

  it("shows a device's installed bundles as name@version", () => {
    expect(installedBundles({ app: '1.2.0', agent: '0.3.1' })).toEqual(['app@1.2.0', 'agent@0.3.1']);
    expect(installedBundles(undefined)).toEqual([]);
  });
});
