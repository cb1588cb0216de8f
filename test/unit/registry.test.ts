// A worker built without some provider or target kind refuses a release that names it with a config failure that is
// not retried and names the kind: retrying cannot give the worker a driver it was not built with.
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { FailureType, NOT_RETRIED } from '../../activities/failures';
import { requireDriver, requireProvider } from '../../activities/registry';
import type { PublishTargetDriver } from '../../activities/types';
import type { Builder, Target } from '../../config/schema';

const caught = (f: () => unknown): ApplicationFailure => {
  try {
    f();
  } catch (err) {
    return err as ApplicationFailure;
  }
  throw new Error('nothing was thrown');
};

describe('requireDriver and requireProvider', () => {
  const glance = { kind: 'openstack' } as Target;
  const directory = { kind: 'directory' } as Target;
  const driver = { kind: 'directory' } as unknown as PublishTargetDriver;

  it('return the driver the worker has for the target kind', () => {
    expect(requireDriver({ directory: driver as never }, directory)).toBe(driver);
  });

  it('refuse a target kind the worker lacks, naming it, not retried', () => {
    const err = caught(() => requireDriver({ directory: driver as never }, glance));
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err.message).toBe('target kind "openstack" is not available on this worker');
    expect(err.type).toBe(FailureType.Config);
    expect(err.nonRetryable).toBe(true);
    expect(NOT_RETRIED).toContain(FailureType.Config);
  });

  it('refuse a builder provider the worker lacks, naming it, not retried', () => {
    const err = caught(() => requireProvider({}, { provider: 'ibmcloud' } as Builder));
    expect(err.message).toBe('builder provider "ibmcloud" is not available on this worker');
    expect(err.type).toBe(FailureType.Config);
    expect(err.nonRetryable).toBe(true);
  });
});
