// AWS errors sorted into what a retry can fix and what only a person can: the latter become non-retryable
// ApplicationFailures that name the resource and the config field to change.
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../failures';

const CREDENTIAL_CODES = new Set([
  'AuthFailure',
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
  'UnrecognizedClientException',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidAccessKeyId',
  'CredentialsProviderError',
]);
const PERMISSION_CODES = new Set(['UnauthorizedOperation', 'AccessDenied', 'AccessDeniedException', 'OptInRequired', 'Blocked']);
const MISSING_SUFFIXES = ['.NotFound', '.Malformed', 'NotFound', 'NoSuchBucket', 'InvalidParameterValue', 'InvalidParameterCombination'];

export const awsErrorCode = (err: unknown): string | undefined => {
  const e = err as { name?: string; Code?: string; code?: string } | undefined;
  return e?.Code ?? e?.name ?? e?.code;
};

export const isNotFound = (err: unknown) => {
  const code = awsErrorCode(err) ?? '';
  const status = (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
  return code.endsWith('.NotFound') || code === 'NotFound' || code === 'NoSuchBucket' || code === 'NoSuchKey' || status === 404;
};

export const isCredentialError = (err: unknown) => CREDENTIAL_CODES.has(awsErrorCode(err) ?? '');
export const isPermissionError = (err: unknown) => PERMISSION_CODES.has(awsErrorCode(err) ?? '');

/**
 * Rethrows `err` as a non-retryable failure when no retry can fix it (credentials, permissions, a missing or invalid
 * resource named in config), with `what` (the resource) and `field` (the config path to change) in the message.
 * Anything else stays a plain Error, which Temporal retries.
 */
export function classifyAwsError(err: unknown, what: string, field: string): Error {
  if (err instanceof ApplicationFailure) return err;
  const code = awsErrorCode(err) ?? 'Error';
  const message = (err as Error)?.message ?? String(err);
  if (isCredentialError(err))
    return ApplicationFailure.nonRetryable(`${what}: AWS refused the credentials (${code}: ${message}); check ${field}`, FailureType.Credentials);
  if (isPermissionError(err))
    return ApplicationFailure.nonRetryable(`${what}: permission denied (${code}: ${message}); grant it to the identity in ${field} (see docs/aws.md)`, FailureType.Permission);
  if (MISSING_SUFFIXES.some((s) => code.endsWith(s)))
    return ApplicationFailure.nonRetryable(`${what}: ${code}: ${message}; check ${field}`, FailureType.Config);
  return err instanceof Error ? err : new Error(`${what}: ${message}`);
}
