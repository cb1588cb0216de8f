// Bad input is refused at validation with the path and what is wrong: durations that would hang a workflow,
// lists with duplicates, architectures whose images go nowhere, and URLs that carry credentials.
import { describe, expect, it } from 'vitest';
import { ConfigError, parseDefinition } from '../../config/load';
import { ReleaseInput } from '../../config/schema';

const valid = () =>
  ({
    name: 'copr-builder',
    source: { image: 'quay.io/example/builder:latest' },
    architectures: {
      s390x: {
        builder: {
          provider: 'ibmcloud',
          region: 'us-east',
          zone: 'us-east-1',
          profile: 'bz2-4x16',
          image: 'r014-abc',
          vpc: 'r014-vpc',
          subnet: '0757-subnet',
          keys: ['r014-key'],
        },
        types: ['qcow2'],
        targets: ['ibm'],
      },
      x86_64: {
        builder: { provider: 'static', hosts: [{ address: '192.0.2.10' }] },
        types: ['ami', 'raw'],
        targets: ['aws-prod', 'hypervisors'],
      },
    },
    targets: {
      ibm: { kind: 'ibmcloud', regions: ['us-east'], cosBucket: 'copr-images' },
      'aws-prod': { kind: 'aws', region: 'us-east-1', copyTo: ['us-west-2'], shareWith: ['123456789012'] },
      hypervisors: { kind: 'libvirt', hosts: ['vmhost-01', 'vmhost-02'] },
      osuosl: { kind: 'openstack', authUrl: 'https://keystone.example.org/v3', credentialsEnv: 'OSUOSL' },
    },
    approval: { approvers: ['copr-admin', 'release-manager'] },
  }) as any;

function problems(data: unknown): string[] {
  try {
    parseDefinition(data);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('durations are bounded', () => {
  it('accepts the fixture as it is', () => {
    expect(problems(valid())).toEqual([]);
  });

  it('refuses an approval timeout that would hold the release forever, saying the bound', () => {
    const data = valid();
    data.approval.timeout = '100000000d';
    expect(problems(data)).toEqual(['approval.timeout: must be at most 90d']);
    data.approval.timeout = '90d';
    expect(problems(data)).toEqual([]);
  });

  it('bounds the heartbeat, retry, build and SSH connect durations', () => {
    const data = valid();
    data.timeouts = { heartbeat: '2h', retryInitial: '2h', retryMax: '30d' };
    data.imageBuilder = { timeout: '30d' };
    data.architectures.x86_64.builder.ssh = { connectTimeout: '1h' };
    expect(problems(data).sort()).toEqual([
      'architectures.x86_64.builder.ssh.connectTimeout: must be at most 10m',
      'imageBuilder.timeout: must be at most 2d',
      'timeouts.heartbeat: must be at most 1h',
      'timeouts.retryInitial: must be at most 1h',
      'timeouts.retryMax: must be at most 1d',
    ]);
  });

  it('refuses a first retry interval longer than the longest one (Temporal would fail the workflow task)', () => {
    const data = valid();
    data.timeouts = { retryInitial: '10m', retryMax: '5m' };
    expect(problems(data)).toEqual(['timeouts.retryInitial: must not be longer than timeouts.retryMax (5m)']);
  });
});

describe('lists where a duplicate makes no sense are refused', () => {
  it.each([
    ['targets.ibm.regions', (d: any) => (d.targets.ibm.regions = ['us-east', 'jp-tok', 'us-east']), 2, 'us-east'],
    ['targets.hypervisors.hosts', (d: any) => (d.targets.hypervisors.hosts = ['vmhost-01', 'vmhost-01']), 1, 'vmhost-01'],
    ['targets.aws-prod.copyTo', (d: any) => (d.targets['aws-prod'].copyTo = ['us-west-2', 'us-west-2']), 1, 'us-west-2'],
    ['targets.aws-prod.shareWith', (d: any) => (d.targets['aws-prod'].shareWith = ['123456789012', '123456789012']), 1, '123456789012'],
    ['architectures.x86_64.targets', (d: any) => (d.architectures.x86_64.targets = ['aws-prod', 'aws-prod']), 1, 'aws-prod'],
    ['architectures.x86_64.types', (d: any) => (d.architectures.x86_64.types = ['ami', 'raw', 'ami']), 2, 'ami'],
    ['architectures.s390x.builder.keys', (d: any) => (d.architectures.s390x.builder.keys = ['k', 'k']), 1, 'k'],
    ['approval.approvers', (d: any) => (d.approval.approvers = ['copr-admin', 'copr-admin']), 1, 'copr-admin'],
  ])('%s', (where, change, index, value) => {
    const data = valid();
    change(data);
    expect(problems(data)).toEqual([`${where}.${index}: "${value}" is listed twice`]);
  });

  it('refuses the same static host twice (address and port)', () => {
    const data = valid();
    data.architectures.x86_64.builder.hosts = [{ address: '192.0.2.10' }, { address: '192.0.2.10', port: 22 }, { address: '192.0.2.10', port: 2222 }];
    expect(problems(data)).toEqual(['architectures.x86_64.builder.hosts.1: "192.0.2.10:22" is listed twice']);
  });

  it('refuses copying an AMI to the region it is registered in', () => {
    const data = valid();
    data.targets['aws-prod'].copyTo = ['us-west-2', 'us-east-1'];
    expect(problems(data)).toEqual(['targets.aws-prod.copyTo.1: "us-east-1" is the region the image is registered in']);
  });

  it('refuses the same architecture twice in the start input', () => {
    const result = ReleaseInput.safeParse({ definition: 'copr-builder', arches: ['s390x', 's390x'] });
    expect(result.success).toBe(false);
  });
});

describe('an architecture must publish somewhere', () => {
  it('refuses an empty target list at validation, before anything is built', () => {
    const data = valid();
    data.architectures.s390x.targets = [];
    expect(problems(data)).toEqual([
      'architectures.s390x.targets: needs at least one target (an architecture whose images go nowhere builds for nothing)',
    ]);
  });

  it('refuses a missing target list', () => {
    const data = valid();
    delete data.architectures.s390x.targets;
    expect(problems(data)).toEqual(['architectures.s390x.targets: required']);
  });
});

describe('URL fields refuse user info', () => {
  const token = 'ghp_s3cr3tT0ken';
  it.each([
    ['source.git', (d: any) => (d.source = { git: `https://bot:${token}@example.org/builder.git` })],
    ['targets.osuosl.authUrl', (d: any) => (d.targets.osuosl.authUrl = `https://admin:${token}@keystone.example.org/v3`)],
    ['targets.osuosl.imageUrl', (d: any) => (d.targets.osuosl.imageUrl = `https://${token}@glance.example.org`)],
    ['targets.ibm.cosEndpoint', (d: any) => (d.targets.ibm.cosEndpoint = `https://key:${token}@s3.example.org`)],
    ['targets.aws-prod.credentials.endpoint', (d: any) => (d.targets['aws-prod'].credentials = { endpoint: `http://AKIA:${token}@127.0.0.1:5000` })],
    ['architectures.s390x.builder.iamEndpoint', (d: any) => (d.architectures.s390x.builder.iamEndpoint = `https://u:${token}@iam.example.org`)],
    [
      'channels.production.activation.0.repository',
      (d: any) => (d.channels = { production: { activation: [{ kind: 'image-map-git', repository: `https://oauth2:${token}@git.example.org/inv.git`, file: 'x.yaml' }] } }),
    ],
    ['targets.hypervisors.uri', (d: any) => (d.targets.hypervisors.uri = `qemu+ssh://root:${token}@vmhost-01/system`)],
    ['notifications.0.url', (d: any) => (d.notifications = [{ kind: 'webhook', url: `https://hook:${token}@chat.example.org/h` }])],
  ])('%s', (where, change) => {
    const data = valid();
    change(data);
    const found = problems(data);
    expect(found).toEqual([`${where}: must not carry user info (user:token@); reference credentials by env var name`]);
    expect(found.join('\n')).not.toContain(token);
  });

  it('still takes an SSH login name, which is no secret (ssh://git@host/repo)', () => {
    const data = valid();
    data.source = { git: 'ssh://git@pagure.io/fedora-infra/builder.git' };
    data.channels = { production: { activation: [{ kind: 'image-map-git', repository: 'ssh://git@pagure.io/inv.git', file: 'x.yaml' }] } };
    expect(problems(data)).toEqual([]);
  });
});
