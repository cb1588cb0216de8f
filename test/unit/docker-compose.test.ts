import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ENV } from '../../worker/settings';
import { SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';

const repo = path.resolve(__dirname, '../..');
const compose = parse(readFileSync(path.join(repo, 'docker-compose.yml'), 'utf8'));

describe('docker-compose.yml', () => {
  const worker = compose.services.worker;

  it('sets only environment variables the worker reads', () => {
    const known = new Set<string>([...Object.values(ENV), 'AWS_PROFILE']);
    for (const key of Object.keys(worker.environment)) expect(known, `unknown worker variable ${key}`).toContain(key);
  });

  it('points the worker and the UI at the Temporal service and port it publishes', () => {
    const [host, port] = String(worker.environment.TEMPORAL_ADDRESS).split(':');
    expect(compose.services[host!]).toBeDefined();
    expect(compose.services[host!].ports.some((p: string) => p.endsWith(`:${port}`))).toBe(true);
    expect(compose.services['temporal-ui'].environment.TEMPORAL_ADDRESS).toBe(worker.environment.TEMPORAL_ADDRESS);
  });

  it('builds the worker from the Containerfile in the repository', () => {
    expect(worker.build.dockerfile).toBe('Containerfile');
    expect(readFileSync(path.join(repo, 'Containerfile'), 'utf8')).toMatch(/CMD \["worker"\]/);
  });

  it('registers every search attribute the workflows set, with its type', () => {
    const command = compose.services['temporal-search-attributes'].command.join(' ');
    for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) expect(command).toContain(`--name ${name} --type ${type}`);
  });

  it('keeps the SSH key out of the environment: a secret file, referenced by path', () => {
    expect(worker.environment[ENV.sshKey]).toMatch(/^\/run\/secrets\//);
    expect(worker.secrets).toContain('builder_ssh_key');
  });
});
