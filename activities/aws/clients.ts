// AWS SDK v3 clients built from a config reference (region, profile or role, endpoint override), resolved on the
// worker. Modules take a narrow `Sends<...>` surface instead of a whole client: the commands listed there are exactly
// the IAM actions that module needs, and a test can hand in a recording or fault-injecting client.
import { EBSClient } from '@aws-sdk/client-ebs';
import { EC2Client } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { SSMClient } from '@aws-sdk/client-ssm';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, Command, MiddlewareStack } from '@smithy/types';

/** The `credentials` block of an aws builder, target or activation in the release definition. */
export interface AwsCredentialsRef {
  profile?: string;
  roleArn?: string;
  endpoint?: string;
}

export interface AwsClientDeps {
  /** Credentials for every client (tests: static fake keys). Default: profile/role from config, else the SDK chain. */
  credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** Retries per call; the SDK default is 3. */
  maxAttempts?: number;
  /** Called with every client built, before first use: tests add recording middleware here. */
  onClient?: (client: { middlewareStack: MiddlewareStack<any, any> }, service: AwsService) => void;
}

export type AwsService = 'ec2' | 'ebs' | 's3' | 'ssm' | 'sts';

type AnyCommand = Command<any, any, any, any, any>;
type OutputOf<C> = C extends Command<any, any, any, infer O, any> ? O : never;

/** A client narrowed to the commands a module sends. */
export interface Sends<C extends AnyCommand> {
  send<K extends C>(command: K, options?: { abortSignal?: AbortSignal }): Promise<OutputOf<K>>;
}

export interface AwsClients {
  ec2(region?: string): EC2Client;
  ebs(region?: string): EBSClient;
  s3(region?: string): S3Client;
  ssm(region?: string): SSMClient;
  sts(region?: string): STSClient;
  readonly region: string;
}

const ROLE_SESSION = 'bootc-release';
const REFRESH_MARGIN_MS = 5 * 60_000;

/** AssumeRole on demand, refreshed before expiry; the base identity comes from the profile or the SDK chain. */
function assumeRole(roleArn: string, region: string, ref: AwsCredentialsRef, deps: AwsClientDeps): AwsCredentialIdentityProvider {
  let cached: AwsCredentialIdentity | undefined;
  return async () => {
    if (cached?.expiration && cached.expiration.getTime() - Date.now() > REFRESH_MARGIN_MS) return cached;
    const sts = new STSClient({ region, endpoint: ref.endpoint, profile: ref.profile, credentials: deps.credentials, maxAttempts: deps.maxAttempts });
    try {
      const out = await sts.send(new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: ROLE_SESSION }));
      const c = out.Credentials;
      if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error(`AssumeRole ${roleArn} returned no credentials`);
      cached = { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken, expiration: c.Expiration };
      return cached;
    } finally {
      sts.destroy();
    }
  };
}

/** Clients for one credentials reference; one client per service and region, built on first use. */
export function awsClients(region: string, ref: AwsCredentialsRef = {}, deps: AwsClientDeps = {}): AwsClients {
  const credentials = ref.roleArn ? assumeRole(ref.roleArn, region, ref, deps) : deps.credentials;
  const common = (r: string) => ({
    region: r,
    endpoint: ref.endpoint,
    // A role's credentials come from AssumeRole; a profile only names the base identity then.
    profile: ref.roleArn ? undefined : ref.profile,
    credentials,
    maxAttempts: deps.maxAttempts,
  });
  const cache = new Map<string, unknown>();
  const make = <T extends { middlewareStack: MiddlewareStack<any, any> }>(service: AwsService, r: string, build: () => T): T => {
    const key = `${service}/${r}`;
    let client = cache.get(key) as T | undefined;
    if (!client) {
      client = build();
      deps.onClient?.(client, service);
      cache.set(key, client);
    }
    return client;
  };
  return {
    region,
    ec2: (r = region) => make('ec2', r, () => new EC2Client(common(r))),
    ebs: (r = region) => make('ebs', r, () => new EBSClient(common(r))),
    // Path-style addressing: emulators and VPC endpoints do not resolve bucket subdomains.
    s3: (r = region) => make('s3', r, () => new S3Client({ ...common(r), forcePathStyle: ref.endpoint ? true : undefined })),
    ssm: (r = region) => make('ssm', r, () => new SSMClient(common(r))),
    sts: (r = region) => make('sts', r, () => new STSClient(common(r))),
  };
}
