// config/temporal.ts: the one description of how the worker and the CLI reach Temporal. Settings are plain data that
// name their secrets; the connection options read them, and a mistake names the variable, never a value.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { releaseVisibilityQuery, temporalConnectionOptions, temporalSettings } from '../../config/temporal';
import { workerSettings } from '../../worker/settings';

const dir = mkdtempSync(path.join(os.tmpdir(), 'temporal-settings-'));
const file = (name: string, text: string) => {
  writeFileSync(path.join(dir, name), text);
  return path.join(dir, name);
};

describe('Temporal settings from the environment', () => {
  it('default to a local server, namespace default and queue bootc-release, without TLS', () => {
    const s = temporalSettings({});
    expect(s).toEqual({ address: '127.0.0.1:7233', namespace: 'default', taskQueue: 'bootc-release', tls: undefined, apiKeyEnv: undefined });
    expect(temporalConnectionOptions(s, {})).toEqual({ address: '127.0.0.1:7233', tls: undefined, apiKey: undefined });
  });

  it('keep the API key out of the settings, naming its variable; the connection options carry it over TLS', () => {
    const env = { TEMPORAL_ADDRESS: 'ns.a1b2c.tmprl.cloud:7233', TEMPORAL_NAMESPACE: 'ns.a1b2c', TEMPORAL_API_KEY: 'secret-key-value' };
    const s = workerSettings(env);
    expect(JSON.stringify(s)).not.toContain('secret-key-value');
    expect(s.apiKeyEnv).toBe('TEMPORAL_API_KEY');
    expect(temporalConnectionOptions(s, env)).toEqual({ address: 'ns.a1b2c.tmprl.cloud:7233', tls: {}, apiKey: 'secret-key-value' });
  });

  it('refuse an API key variable emptied after the settings were read, naming the variable', () => {
    const s = temporalSettings({ TEMPORAL_API_KEY: 'secret-key-value' });
    expect(() => temporalConnectionOptions(s, {})).toThrow(/^TEMPORAL_API_KEY is empty/);
  });

  it('name mTLS files in the settings and read them into the connection options', () => {
    const env = {
      TEMPORAL_TLS_CERT: file('client.pem', 'CERT'),
      TEMPORAL_TLS_KEY: file('client.key', 'KEY'),
      TEMPORAL_TLS_CA: file('ca.pem', 'CA'),
      TEMPORAL_TLS_SERVER_NAME: 'temporal.example.org',
    };
    const s = temporalSettings(env);
    expect(s.tls).toEqual({ certFile: env.TEMPORAL_TLS_CERT, keyFile: env.TEMPORAL_TLS_KEY, caFile: env.TEMPORAL_TLS_CA, serverName: 'temporal.example.org' });
    const { tls } = temporalConnectionOptions(s, env);
    expect(tls?.clientCertPair?.crt.toString()).toBe('CERT');
    expect(tls?.clientCertPair?.key.toString()).toBe('KEY');
    expect(tls?.serverRootCACertificate?.toString()).toBe('CA');
    expect(tls?.serverName).toBe('temporal.example.org');
  });

  it('refuse a certificate without its key, and a file that cannot be read, naming the variable', () => {
    expect(() => temporalSettings({ TEMPORAL_TLS_CERT: '/x.pem' })).toThrow('TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together');
    const s = temporalSettings({ TEMPORAL_TLS_CA: path.join(dir, 'missing-ca.pem') });
    expect(() => temporalConnectionOptions(s, {})).toThrow(`TEMPORAL_TLS_CA: cannot read ${path.join(dir, 'missing-ca.pem')}: ENOENT`);
  });
});

describe('the release visibility query', () => {
  it('names the release workflow type and the search attributes by their constants', () => {
    expect(releaseVisibilityQuery()).toBe(`WorkflowType = 'imageRelease'`);
    expect(releaseVisibilityQuery({ stage: 'awaiting-approval', name: 'copr-builder', running: true })).toBe(
      `WorkflowType = 'imageRelease' AND BootcReleaseStage = 'awaiting-approval' AND BootcReleaseName = 'copr-builder' AND ExecutionStatus = 'Running'`,
    );
  });

  it('cannot be broken out of by a quote in a value', () => {
    expect(releaseVisibilityQuery({ name: "x' OR WorkflowType != '" })).toBe(`WorkflowType = 'imageRelease' AND BootcReleaseName = 'x OR WorkflowType != '`);
  });
});
