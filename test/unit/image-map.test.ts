import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { activate, buildImageMap } from '../../activities/activation/image-map';
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
    writeFileSync(file, 'other_var: 1\ncopr_builder_images:\n  aws:\n    x86_64: ami-old\n');
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
    const input = { plan, channel: 'staging', candidates: [c({ imageId: 'ami-new' })], approvedBy: 'a' };
    const first = await activate(input);
    const retried = await activate(input);
    const doc = parse(readFileSync(file, 'utf8'));
    expect(doc.other_var).toBe(1);
    expect(doc.copr_builder_images).toEqual({ aws: { x86_64: 'ami-new' } });
    expect(first.replaced[0]!.previous).toEqual({ aws: { x86_64: 'ami-old' } });
    expect(retried.replaced[0]!.previous).toEqual({ aws: { x86_64: 'ami-old' } });
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
