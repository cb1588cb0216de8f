// The builder providers and publish targets a worker has, each under its kind and typed for that kind: the compiler
// checks that worker/wiring.ts puts the aws provider under `aws` and that it takes aws builders, as osbuild checks
// each uploader against its interface.
import { ApplicationFailure } from '@temporalio/common';
import type { Builder, Target } from '../config/schema';
import { FailureType } from './failures';
import type { BuilderProvider, PublishTargetDriver } from './types';

/** The configuration of builders of one provider kind: `BuilderOf<'aws'>` is the aws builder. */
export type BuilderOf<K extends Builder['provider']> = Extract<Builder, { provider: K }>;
/** The configuration of targets of one kind: `TargetOf<'libvirt'>` is the libvirt target. */
export type TargetOf<K extends Target['kind']> = Extract<Target, { kind: K }>;

export type BuilderProviders = { [K in Builder['provider']]?: BuilderProvider<BuilderOf<K>> };
export type PublishTargets = { [K in Target['kind']]?: PublishTargetDriver<TargetOf<K>> };

/** The provider of builders of `kind`; asked with a builder's own kind, it takes that builder. */
export const providerOf = <K extends Builder['provider']>(providers: BuilderProviders, kind: K): BuilderProvider<BuilderOf<K>> | undefined =>
  providers[kind];

/** The driver of targets of `kind`; asked with a target's own kind, it takes that target. */
export const driverOf = <K extends Target['kind']>(targets: PublishTargets, kind: K): PublishTargetDriver<TargetOf<K>> | undefined =>
  targets[kind];

/** The provider of `builder`, or a config failure (not retried) naming the kind this worker lacks. */
export function requireProvider(providers: BuilderProviders, builder: Builder): BuilderProvider {
  const p = providerOf(providers, builder.provider);
  if (!p) throw ApplicationFailure.nonRetryable(`builder provider "${builder.provider}" is not available on this worker`, FailureType.Config);
  return p as BuilderProvider;
}

/** The driver of `target`, or a config failure (not retried) naming the kind this worker lacks. */
export function requireDriver(targets: PublishTargets, target: Target): PublishTargetDriver {
  const d = driverOf(targets, target.kind);
  if (!d) throw ApplicationFailure.nonRetryable(`target kind "${target.kind}" is not available on this worker`, FailureType.Config);
  return d as PublishTargetDriver;
}
