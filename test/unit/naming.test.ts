// Resource names where the cloud caps them at 63 characters: unique per (release, arch, step) however long the
// release id, and read back only to the release they were made for.
import { describe, expect, it } from 'vitest';
import { parseResourceName, resourceName, vpcImageName } from '../../activities/naming';

const definition = 'copr-builder-for-the-long-named-farm-v2'; // 39 characters, within the schema's 63
const releases = [`${definition}-20261129-120000`, `${definition}-20261129-120001`];
const VPC_NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

describe('resource names', () => {
  it('stay unique, valid and at most 63 characters for two arches and two releases of a long definition name', () => {
    const names = releases.flatMap((r) => (['x86_64', 's390x'] as const).map((arch) => resourceName(r, arch, 'builder')));
    expect(new Set(names).size).toBe(4);
    for (const name of names) expect(name).toMatch(VPC_NAME);
  });

  it('map back to the full release id they were made for, and to no other', () => {
    for (const releaseId of releases) {
      const name = resourceName(releaseId, 's390x', 'builder');
      const parsed = parseResourceName(name, 'builder');
      expect(parsed).toMatchObject({ exact: false, arch: 's390x' });
      expect(releases.filter((candidate) => resourceName(candidate, 's390x', 'builder') === name)).toEqual([releaseId]);
    }
  });

  it('write a short, plain release id out whole, and read it back exactly', () => {
    expect(resourceName('rel-b1', 's390x', 'builder')).toBe('bootc-release-rel-b1-s390x-builder');
    expect(parseResourceName('bootc-release-rel-b1-x86-64-builder', 'builder')).toEqual({ exact: true, releaseId: 'rel-b1', arch: 'x86_64', step: 'builder' });
  });

  it('never read an id out of a name an older version cut at 63 characters', () => {
    const cut = `bootc-release-${releases[0]}-s390x-builder`.slice(0, 63);
    expect(parseResourceName(cut, 'builder')).toBeUndefined();
  });

  it('hash ids the name cannot hold exactly (dots, underscores, capitals) so that they never share a name', () => {
    expect(resourceName('copr_b-1', 's390x', 'builder')).not.toBe(resourceName('copr-b-1', 's390x', 'builder'));
    expect(parseResourceName(resourceName('Copr.b-1', 's390x', 'builder'), 'builder')).toMatchObject({ exact: false });
  });
});

describe('VPC image names', () => {
  it('stay unique and valid for two arches and two releases of a long definition name', () => {
    const names = ['20261129_120000', '20261129_120001'].flatMap((stamp) =>
      ['x86_64', 's390x'].map((arch) => vpcImageName(`${definition}-${arch}-${stamp}-qcow2`)),
    );
    expect(new Set(names).size).toBe(4);
    for (const name of names) expect(name).toMatch(VPC_NAME);
  });

  it('keep the readable name when it fits', () => {
    expect(vpcImageName('copr-s390x-20250101_120000')).toBe('copr-s390x-20250101-120000');
  });
});
