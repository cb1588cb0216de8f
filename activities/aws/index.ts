// What the worker wires for AWS: the builder provider and the publish target, each built from its deps.
export { createAwsBuilderProvider, type AwsBuilder, type AwsBuilderDeps } from './builder-vm';
export { createAwsTarget, type AwsTarget, type AwsTargetDeps, type AwsPublishProgress } from './target';
export { awsClients, type AwsClientDeps, type AwsCredentialsRef } from './clients';
