import { describe, expect, it } from 'vitest';
import { baseImages } from '../../activities/source/containerfile';
import { parseImageRef } from '../../activities/source/registry';

describe('reading what an image is built from', () => {
  it('lists the FROM images of a Containerfile with ARG defaults, skipping stages and scratch', () => {
    const file = [
      'ARG FEDORA=42',
      'ARG BASE=quay.io/fedora/fedora-bootc',
      'FROM --platform=$BUILDPLATFORM ${BASE}:${FEDORA} AS build',
      'RUN make',
      'FROM scratch AS empty',
      'FROM build',
      'FROM registry.example.org:5000/tools/helper@sha256:abc \\',
      '  AS helper',
      'FROM quay.io/fedora/fedora-bootc:42',
    ].join('\n');
    expect(baseImages(file)).toEqual(['quay.io/fedora/fedora-bootc:42', 'registry.example.org:5000/tools/helper@sha256:abc']);
  });

  it('splits image references the way registries name them', () => {
    expect(parseImageRef('fedora:42')).toEqual({ registry: 'docker.io', repository: 'library/fedora', reference: '42' });
    expect(parseImageRef('quay.io/centos-bootc/centos-bootc:stream10')).toEqual({
      registry: 'quay.io',
      repository: 'centos-bootc/centos-bootc',
      reference: 'stream10',
    });
    expect(parseImageRef('127.0.0.1:5000/rig/builder')).toEqual({ registry: '127.0.0.1:5000', repository: 'rig/builder', reference: 'latest' });
    expect(parseImageRef('localhost/x@sha256:00ff')).toEqual({ registry: 'localhost', repository: 'x', reference: 'sha256:00ff' });
  });
});
