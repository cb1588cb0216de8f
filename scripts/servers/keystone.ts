// A real Keystone (Debian's python3-keystone) for the OpenStack target's password auth: SQLite, fernet tokens,
// bootstrapped with an admin, served by keystone-wsgi-public (wsgiref, single-threaded: plenty for tests).
import { execFile, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stopProcess } from './process';
import { promisify } from 'node:util';
import { freePort, tool, waitForPort } from './tools';

const execFileP = promisify(execFile);

export interface Keystone {
  /** http://127.0.0.1:PORT/v3 */
  authUrl: string;
  admin: { username: string; password: string; projectName: string };
  /** A project with a user holding `roles` in it; returns the ids. */
  addUser(opts: { project: string; username: string; password: string; roles: string[] }): Promise<{ projectId: string; userId: string }>;
  /** Registers a public `image` endpoint in the catalog. */
  addImageEndpoint(url: string): Promise<void>;
  stop(): Promise<void>;
}

export const KEYSTONE_ADMIN = { username: 'admin', password: 'rig-admin-password', projectName: 'admin' };

/** `port` lets a caller configure a peer (glance) with the URL while Keystone is still being set up. */
export async function startKeystone(dir: string, opts: { port?: number } = {}): Promise<Keystone> {
  for (const d of ['fernet', 'credential']) mkdirSync(path.join(dir, d), { recursive: true });
  const port = opts.port ?? (await freePort());
  const authUrl = `http://127.0.0.1:${port}/v3`;
  const conf = path.join(dir, 'keystone.conf');
  writeFileSync(
    conf,
    [
      '[DEFAULT]',
      `log_file = ${path.join(dir, 'keystone.log')}`,
      '[database]',
      `connection = sqlite:///${path.join(dir, 'keystone.sqlite')}`,
      '[token]',
      'provider = fernet',
      '[fernet_tokens]',
      `key_repository = ${path.join(dir, 'fernet')}`,
      '[fernet_receipts]',
      `key_repository = ${path.join(dir, 'fernet')}`,
      '[credential]',
      `key_repository = ${path.join(dir, 'credential')}`,
    ].join('\n') + '\n',
  );
  const manage = (...args: string[]) => execFileP(tool('keystone-manage'), ['--config-file', conf, ...args], { cwd: dir });
  const admin = KEYSTONE_ADMIN;
  await manage('db_sync');
  await manage('fernet_setup', '--keystone-user', 'root', '--keystone-group', 'root');
  await manage('bootstrap', '--bootstrap-password', admin.password, '--bootstrap-public-url', authUrl, '--bootstrap-region-id', 'RegionOne');

  const log = createWriteStream(path.join(dir, 'keystone.out'));
  const child = spawn(tool('keystone-wsgi-public'), ['--host', '127.0.0.1', '--port', String(port), '--', '--config-file', conf], {
    cwd: dir,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  await waitForPort('127.0.0.1', port, 60_000, 'keystone');

  const adminToken = async () => {
    const res = await fetch(`${authUrl}/auth/tokens`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        auth: {
          identity: { methods: ['password'], password: { user: { name: admin.username, domain: { id: 'default' }, password: admin.password } } },
          scope: { project: { name: admin.projectName, domain: { id: 'default' } } },
        },
      }),
    });
    if (!res.ok) throw new Error(`keystone admin auth: ${res.status} ${await res.text()}`);
    return res.headers.get('x-subject-token')!;
  };
  let token: Promise<string> | undefined;
  const api = async (method: string, p: string, body?: unknown): Promise<any> => {
    for (let attempt = 1; ; attempt++) {
      const res = await fetch(`${authUrl}${p}`, {
        method,
        // No Content-Type without a body: Keystone answers 500 to an empty JSON body.
        headers: { ...(body ? { 'Content-Type': 'application/json' } : {}), 'X-Auth-Token': await (token ??= adminToken()) },
        body: body ? JSON.stringify(body) : undefined,
      });
      // Keystone on SQLite sometimes reports "database is locked" (500) on back-to-back writes: try again.
      if (res.status === 500 && attempt < 5) {
        await new Promise((r) => setTimeout(r, 200 * attempt));
        continue;
      }
      if (!res.ok) throw new Error(`keystone ${method} ${p}: ${res.status} ${await res.text()}`);
      return res.status === 204 ? {} : await res.json();
    }
  };

  return {
    authUrl,
    admin,
    async addUser({ project, username, password, roles }) {
      const existing = (await api('GET', `/projects?name=${encodeURIComponent(project)}`)).projects[0];
      const projectId = existing?.id ?? (await api('POST', '/projects', { project: { name: project, domain_id: 'default' } })).project.id;
      const userId = (await api('POST', '/users', { user: { name: username, password, domain_id: 'default', default_project_id: projectId } })).user.id;
      for (const role of roles) {
        const roleId = (await api('GET', `/roles?name=${role}`)).roles[0].id;
        await api('PUT', `/projects/${projectId}/users/${userId}/roles/${roleId}`);
      }
      return { projectId, userId };
    },
    async addImageEndpoint(url) {
      const service = (await api('POST', '/services', { service: { type: 'image', name: 'glance' } })).service;
      await api('POST', '/endpoints', { endpoint: { service_id: service.id, interface: 'public', url, region_id: 'RegionOne' } });
    },
    stop: () => stopProcess(child),
  };
}
