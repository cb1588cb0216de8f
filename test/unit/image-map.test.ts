import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createActivationActivities, createActivationDrivers } from '../../activities/activation';
import { buildImageMap, imageMapEntries, mergeImageMap, previousImageMap } from '../../activities/activation/image-map';
import type { Candidate } from '../../activities/types';
import { parsePlan } from '../../config/load';

const c = (o: Partial<Candidate>): Candidate => ({
  arch: 'x86_64',
  target: 'aws',
  kind: 'aws',
  imageId: 'ami-1',
  name: 'copr-builder-x86_64-20261126_120000',
  type: 'ami',
  size: 10,
  sha256: 'ab',
  ...o,
});

describe('image map', () => {
  it('has the shape of Fedora Copr inventory: target → arch → id, regions as Ansible-friendly keys', () => {
    const map = buildImageMap([
      c({ region: 'us-east-1', imageId: 'ami-east' }),
      c({ region: 'us-west-2', imageId: 'ami-west' }),
      c({ arch: 'aarch64', region: 'us-east-1', imageId: 'ami-arm' }),
      c({ target: 'ibm', kind: 'ibmcloud', arch: 's390x', region: 'us-east', imageId: 'r014-a', type: 'qcow2' }),
      c({ target: 'hv', kind: 'libvirt', arch: 'ppc64le', imageId: 'h1:images/n', name: 'copr-builder-ppc64le-x', type: 'raw' }),
      c({ target: 'hv', kind: 'libvirt', arch: 'ppc64le', imageId: 'h2:images/n', name: 'copr-builder-ppc64le-x', type: 'raw' }),
    ]);
    expect(map).toEqual({
      aws: { x86_64: { us_east_1: 'ami-east', us_west_2: 'ami-west' }, aarch64: 'ami-arm' },
      ibm: { s390x: 'r014-a' },
      hv: { ppc64le: 'copr-builder-ppc64le-x' },
    });
  });

  it('writes the map into an existing inventory file, keeps other keys, and records what it replaced even when retried', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'imagemap-'));
    const file = path.join(dir, 'copr.yaml');
    writeFileSync(file, 'other_var: 1\ncopr_builder_images:\n  aws:\n    x86_64: ami-old\n    aarch64: ami-arm\n');
    const plan = parsePlan({
      releaseId: 'r1',
      stamp: '20261126_120000',
      arches: ['x86_64'],
      definition: {
        name: 'copr-builder',
        source: { image: 'quay.io/x/y:1' },
        architectures: { x86_64: { builder: { provider: 'static', hosts: [{ address: '127.0.0.1' }] }, types: ['ami'], targets: ['aws'] } },
        targets: { aws: { kind: 'aws', region: 'us-east-1' } },
        approval: { approvers: ['a'] },
        channels: { staging: { activation: [{ kind: 'image-map-file', path: file }] } },
      },
    });
    const { activate } = createActivationActivities(createActivationDrivers({ stateDir: dir }));
    const input = { plan, channel: 'staging', candidates: [c({ imageId: 'ami-new' })], approvedBy: 'a' };
    const first = await activate(input);
    const retried = await activate(input);
    const doc = parse(readFileSync(file, 'utf8'));
    expect(doc.other_var).toBe(1);
    expect(doc.copr_builder_images).toEqual({ aws: { x86_64: 'ami-new', aarch64: 'ami-arm' } });
    const replaced = [{ target: file, entries: [{ path: ['aws', 'x86_64'], previous: 'ami-old', value: 'ami-new' }] }];
    expect(first.replaced).toEqual(replaced);
    expect(retried.replaced).toEqual(replaced);
  });
});

describe('merging a release into an image map', () => {
  // Fedora Copr's inventory, as the farm keeps it.
  const inventory = () => ({
    aws: { x86_64: { us_east_1: 'ami-x-east', us_west_2: 'ami-x-west' }, aarch64: 'ami-arm' },
    hypervisor: { ppc64le: 'copr-builder-ppc64le-old' },
    ibm_cloud: { s390x: { us_east: 'r014-old', jp_tok: 'r022-old' } },
    osuosl: { ppc64le: 'glance-old' },
  });
  const plan = parsePlan({
    releaseId: 'r2',
    stamp: '20261126_120000',
    arches: ['s390x'],
    definition: {
      name: 'copr-builder',
      source: { image: 'quay.io/x/y:1' },
      architectures: {
        x86_64: { builder: { provider: 'static', hosts: [{ address: '127.0.0.1' }] }, types: ['ami'], targets: ['aws'] },
        s390x: { builder: { provider: 'static', hosts: [{ address: '127.0.0.1' }] }, types: ['qcow2'], targets: ['ibm_cloud'] },
      },
      targets: {
        aws: { kind: 'aws', region: 'us-east-1', copyTo: ['us-west-2'] },
        ibm_cloud: { kind: 'ibmcloud', regions: ['us-east', 'jp-tok'], cosBucket: 'copr-images' },
      },
      approval: { approvers: ['a'] },
    },
  });

  it('a one-arch release changes only its arch, and records exactly the entries it replaced', () => {
    const s390x = (region: string, imageId: string) =>
      c({ arch: 's390x', target: 'ibm_cloud', kind: 'ibmcloud', region, imageId, type: 'qcow2' });
    const { map, replaced } = mergeImageMap(inventory(), imageMapEntries([s390x('us-east', 'r014-new'), s390x('jp-tok', 'r022-new')], plan), 'm');
    expect(map).toEqual({ ...inventory(), ibm_cloud: { s390x: { us_east: 'r014-new', jp_tok: 'r022-new' } } });
    expect(replaced).toEqual([
      { path: ['ibm_cloud', 's390x', 'us_east'], previous: 'r014-old', value: 'r014-new' },
      { path: ['ibm_cloud', 's390x', 'jp_tok'], previous: 'r022-old', value: 'r022-new' },
    ]);
  });

  it('an approval of one region keeps the other regions of the same arch', () => {
    const chosen = [c({ target: 'aws', region: 'us-west-2', imageId: 'ami-x-west-new' })];
    const { map, replaced } = mergeImageMap(inventory(), imageMapEntries(chosen, plan), 'm');
    expect(map.aws!.x86_64).toEqual({ us_east_1: 'ami-x-east', us_west_2: 'ami-x-west-new' });
    expect(map.aws!.aarch64).toBe('ami-arm');
    expect(replaced).toEqual([{ path: ['aws', 'x86_64', 'us_west_2'], previous: 'ami-x-west', value: 'ami-x-west-new' }]);
  });

  it('records a new entry without a previous value, so a rollback deletes it', () => {
    const { replaced } = mergeImageMap(inventory(), [{ target: 'osuosl', arch: 'x86_64', value: 'glance-x' }], 'm');
    expect(replaced).toEqual([{ path: ['osuosl', 'x86_64'], value: 'glance-x' }]);
  });

  it('gives the hook the map as it was in the release\'s entries: replaced ones as before, unchanged ones as they are, new ones absent', () => {
    const chosen = [
      c({ target: 'aws', region: 'us-east-1', imageId: 'ami-x-east' }), // already there: not replaced
      c({ target: 'aws', region: 'us-west-2', imageId: 'ami-x-west-new' }),
      c({ arch: 's390x', target: 'ibm_cloud', kind: 'ibmcloud', region: 'us-east', imageId: 'r014-new', type: 'qcow2' }),
      c({ target: 'osuosl', kind: 'openstack', imageId: 'glance-x' }), // a new entry
    ];
    const entries = imageMapEntries(chosen, plan);
    const { replaced } = mergeImageMap(inventory(), entries, 'm');
    expect(previousImageMap(buildImageMap(chosen, plan), replaced)).toEqual({
      aws: { x86_64: { us_east_1: 'ami-x-east', us_west_2: 'ami-x-west' } },
      ibm_cloud: { s390x: { us_east: 'r014-old' } },
    });
  });

  it('gives the whole earlier entry when the release replaced it whole (one image became one per region)', () => {
    const chosen = [c({ target: 'aws', arch: 'x86_64', region: 'us-west-2', imageId: 'ami-west' })];
    const { replaced } = mergeImageMap({ aws: { x86_64: 'ami-single' } }, imageMapEntries(chosen, plan), 'm');
    expect(previousImageMap(buildImageMap(chosen, plan), replaced)).toEqual({ aws: { x86_64: 'ami-single' } });
  });

  it('refuses a map that is not a mapping, naming it', () => {
    expect(() => mergeImageMap(['ami-1'], [{ target: 'aws', arch: 'x86_64', value: 'ami-2' }], 'inv.yaml: copr_builder_images')).toThrow(
      /inv.yaml: copr_builder_images is not a mapping/,
    );
  });
});

describe('image map of a directory target holding several types', () => {
  it('keys the images of one architecture by type', () => {
    const map = buildImageMap([
      c({ target: 'local', kind: 'directory', imageId: '/srv/a.qcow2', type: 'qcow2' }),
      c({ target: 'local', kind: 'directory', imageId: '/srv/a.raw', type: 'raw' }),
    ]);
    expect(map).toEqual({ local: { x86_64: { qcow2: '/srv/a.qcow2', raw: '/srv/a.raw' } } });
  });
});
