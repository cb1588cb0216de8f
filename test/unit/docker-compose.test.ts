// docker-compose.yml cannot be started here (no Docker), so its wiring is read and held against the code: the
// worker's variables, the server's database settings, the schema and namespace set-up, the pinned images.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ENV } from '../../worker/settings';
import { SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';

const repo = path.resolve(__dirname, '../..');
const compose = parse(readFileSync(path.join(repo, 'docker-compose.yml'), 'utf8'));
const services: Record<string, any> = compose.services;

/** The one service running `image` (by repository, without registry or tag). */
function serviceOf(image: string): [string, any] {
  const found = Object.entries(services).filter(([, s]) => s.image && repository(s.image) === image);
  expect(found.map(([name]) => name), `services running ${image}`).toHaveLength(1);
  return found[0]!;
}
/** The one-shot service whose script runs `command`. */
function oneShot(command: string): [string, any] {
  const found = Object.entries(services).find(([, s]) => Array.isArray(s.command) && s.command.join('\n').includes(command));
  expect(found, `a service that runs ${command}`).toBeDefined();
  return found!;
}
const repository = (image: string) => image.replace(/^docker\.io\//, '').replace(/:[^/:]+$/, '');
const tag = (image: string) => /:([^/:]+)$/.exec(image)?.[1];
/** A one-shot's shell script as the shell sees it: compose's `$$` is one `$`, `\`-continued lines are one line. */
const script = (service: any) => (service.command as string[]).join('\n').replace(/\$\$/g, '$').replace(/\\\n\s*/g, '');

describe('docker-compose.yml', () => {
  const worker = services.worker;
  // Looked up inside each test, so that a file without one of them fails the tests that need it, by name.
  const temporal = () => serviceOf('temporalio/server');
  const schemaSetup = () => oneShot('temporal-sql-tool');
  const namespaceSetup = () => oneShot('operator namespace create');

  it('sets only environment variables the worker reads', () => {
    const known = new Set<string>([...Object.values(ENV), 'AWS_PROFILE']);
    for (const key of Object.keys(worker.environment)) expect(known, `unknown worker variable ${key}`).toContain(key);
  });

  it('points the worker and the UI at the Temporal service and port it publishes', () => {
    const [host, port] = String(worker.environment.TEMPORAL_ADDRESS).split(':');
    expect(host).toBe(temporal()[0]);
    expect(services[host!].ports.some((p: string) => p.endsWith(`:${port}`))).toBe(true);
    expect(services['temporal-ui'].environment.TEMPORAL_ADDRESS).toBe(worker.environment.TEMPORAL_ADDRESS);
    expect(namespaceSetup()[1].environment.TEMPORAL_ADDRESS).toBe(worker.environment.TEMPORAL_ADDRESS);
  });

  it('builds the worker from the Containerfile in the repository', () => {
    expect(worker.build.dockerfile).toBe('Containerfile');
    expect(readFileSync(path.join(repo, 'Containerfile'), 'utf8')).toMatch(/CMD \["worker"\]/);
  });

  it('runs no auto-setup image (deprecated by Temporal) and pins every image: Temporal ones to an exact release', () => {
    for (const [name, s] of Object.entries(services)) {
      if (!s.image) continue;
      expect(s.image, name).not.toMatch(/auto-setup/);
      expect(tag(s.image), `${name}: ${s.image} has no version tag`).toMatch(/^\d/);
      if (repository(s.image).startsWith('temporalio/')) expect(tag(s.image), `${name}: ${s.image}`).toMatch(/^\d+\.\d+\.\d+$/);
    }
  });

  it('runs admin-tools of the server version, whose schema files are the ones that server expects', () => {
    const adminTools = Object.entries(services).filter(([, s]) => s.image && repository(s.image) === 'temporalio/admin-tools');
    expect(adminTools.length).toBeGreaterThanOrEqual(2);
    const [, server] = temporal();
    for (const [name, s] of adminTools) expect(tag(s.image), name).toBe(tag(server.image));
  });

  it('configures the server for the PostgreSQL service, with the credentials that service was given', () => {
    const env = temporal()[1].environment;
    expect(env.DB).toBe('postgres12');
    const db = services[env.POSTGRES_SEEDS];
    expect(repository(db.image), `POSTGRES_SEEDS=${env.POSTGRES_SEEDS}`).toBe('library/postgres');
    expect(env.POSTGRES_USER).toBe(db.environment.POSTGRES_USER);
    expect(env.POSTGRES_PWD).toBe(db.environment.POSTGRES_PASSWORD);
    // Other containers (and the healthcheck on localhost) reach the frontend only when it listens on every address.
    expect(env.BIND_ON_IP).toBe('0.0.0.0');
  });

  it('creates and updates both databases with admin-tools, connected as the server is, before the server starts', () => {
    const [, server] = temporal();
    const [schemaName, schema] = schemaSetup();
    const sh = script(schema);
    const env = server.environment;
    for (const [database, dir] of [
      [env.DBNAME, 'temporal'],
      [env.VISIBILITY_DBNAME, 'visibility'],
    ]) {
      expect(sh).toContain(`temporal-sql-tool --db ${database} create-database`);
      expect(sh).toContain(`temporal-sql-tool --db ${database} setup-schema -v 0.0`);
      expect(sh).toContain(`temporal-sql-tool --db ${database} update-schema -d /etc/temporal/schema/postgresql/v12/${dir}/versioned`);
    }
    expect(schema.environment).toMatchObject({
      SQL_PLUGIN: env.DB,
      SQL_HOST: env.POSTGRES_SEEDS,
      SQL_PORT: env.DB_PORT,
      SQL_USER: env.POSTGRES_USER,
      SQL_PASSWORD: env.POSTGRES_PWD,
    });
    expect(schema.depends_on[env.POSTGRES_SEEDS]).toEqual({ condition: 'service_healthy' });
    expect(server.depends_on[schemaName]).toEqual({ condition: 'service_completed_successfully' });
  });

  it("creates the worker's namespace and every search attribute the workflows set, between server and worker", () => {
    const [serverName, server] = temporal();
    const [namespaceName, setup] = namespaceSetup();
    const sh = script(setup);
    const namespace = worker.environment.TEMPORAL_NAMESPACE;
    expect(sh).toContain(`temporal operator namespace create --namespace ${namespace}`);
    const create = sh.split('\n').find((l) => l.includes('operator search-attribute create'))!;
    expect(create).toContain(`--namespace ${namespace}`);
    for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) expect(create).toContain(`--name ${name} --type ${type}`);
    expect(setup.depends_on[serverName]).toEqual({ condition: 'service_healthy' });
    expect(server.healthcheck).toBeDefined();
    expect(worker.depends_on[namespaceName]).toEqual({ condition: 'service_completed_successfully' });
  });

  it("turns on workflow updates, through which the CLI approves, rejects and retries", () => {
    const [, server] = temporal();
    const mount = server.configs?.find((c: any) => c.target === server.environment.DYNAMIC_CONFIG_FILE_PATH);
    expect(mount, 'DYNAMIC_CONFIG_FILE_PATH is a mounted config').toBeDefined();
    const dynamic = parse(compose.configs[mount.source].content);
    expect(dynamic['frontend.enableUpdateWorkflowExecution']).toEqual([{ value: true }]);
  });

  it('keeps the SSH key out of the environment: a secret file, referenced by path', () => {
    expect(worker.environment[ENV.sshKey]).toMatch(/^\/run\/secrets\//);
    expect(worker.secrets).toContain('builder_ssh_key');
  });
});
