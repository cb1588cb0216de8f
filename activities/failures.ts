// The failure types (ApplicationFailure's `type`) the code throws and the retry policies name, in one list: a type
// spelled one way by its thrower and another way by a policy is a retry that never stops. Pure (no imports at all), so
// the workflows import it too. test/unit/failures.test.ts checks that every type thrown in the code is listed here.
export const FailureType = {
  /** The definition or the worker's setup is wrong (a field, a missing variable or tool): a person must change it. */
  Config: 'ConfigError',
  /** A cloud refused the credentials themselves (expired, unknown key). */
  Credentials: 'CredentialsError',
  /** The identity is known but may not do this (IAM, a role, libvirt access, a refused SSH key). */
  Permission: 'PermissionError',
  /** A resource the config names is not there (IBM Cloud answered 404). */
  NotFound: 'NotFound',
  /** An SSH host presented another key than the pinned one. */
  HostKeyMismatch: 'HostKeyMismatch',
  /** bootc-image-builder ran out of space on the builder. */
  NoSpaceLeft: 'NoSpaceLeft',
  /** The worker's staging directory cannot hold the artifact. */
  StagingFull: 'StagingFull',
  /** bootc-image-builder exited 0 without the file it should have written. */
  ArtifactMissing: 'ArtifactMissing',
  /** AWS ImportSnapshot refused the image (its format, its size, the vmimport role). */
  AwsImportFailed: 'ImportError',
  /** An IBM Cloud VPC image import ended failed. */
  IbmImportFailed: 'ImageImportFailed',
  /** Glance refused an image for its size or the project's quota. */
  GlanceQuota: 'QuotaError',
  /** Glance refused a request for another reason (4xx). */
  GlanceRefused: 'GlanceError',
  /** An activation hook exited non-zero, or ran past its timeout. */
  ActivationHookFailed: 'ActivationHookFailed',
  ActivationHookTimedOut: 'ActivationHookTimedOut',
  /** A channel refused a request: promote, roll back or mark tested something it cannot (workflow failure). */
  ChannelRequestRefused: 'ChannelRequestRefused',
  /** A channel's activation of a release failed (workflow failure, and the channel client's answer). */
  ActivationFailed: 'ActivationFailed',
  /** A release produced no candidate image (workflow failure). */
  NoCandidates: 'NoCandidates',
  /** An approve or reject update was refused (not an approver, a bad signature, already decided). */
  DecisionRefused: 'DecisionRefused',
} as const;

export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/**
 * Failures the release's activity retry policies never retry, whatever the failure itself says: a wrong definition or
 * setup, a refused identity, a changed host key, a full builder.
 */
export const NOT_RETRIED: readonly FailureType[] = [
  FailureType.Config,
  FailureType.HostKeyMismatch,
  FailureType.NoSpaceLeft,
  FailureType.Permission,
];
