// A real glance-api (Debian's), standalone: SQLite, the file store, one worker, on a free port, in its own dir.
// Identity comes either from X-* headers (the `fakeauth` paste pipeline: projects and role-based policy are real,
// tokens are not) or from a real Keystone through keystonemiddleware (the `keystone` flavour).
import { execFile, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stopProcess } from './process';
import { promisify } from 'node:util';
import { freePort, tool, waitForPort } from './tools';

const execFileP = promisify(execFile);

export interface Glance {
  /** http://127.0.0.1:PORT (the image endpoint; the API is under /v2). */
  address: string;
  dir: string;
  stop(): Promise<void>;
}

export interface GlanceKeystone {
  /** Keystone v3 URL, e.g. http://127.0.0.1:5000/v3 */
  authUrl: string;
  /** A service user glance validates tokens with. */
  username: string;
  password: string;
  projectName: string;
}

/** Headers a fakeauth glance-api believes: the identity of a user in a project, with roles. */
export const identityHeaders = (projectId: string, roles = ['member', 'reader'], userId = `user-${projectId}`) => ({
  'X-Identity-Status': 'Confirmed',
  'X-User-Id': userId,
  'X-Project-Id': projectId,
  'X-Roles': roles.join(','),
});

export async function startGlance(dir: string, opts: { keystone?: GlanceKeystone } = {}): Promise<Glance> {
  for (const d of ['images', 'staging', 'tasks', 'locks']) mkdirSync(path.join(dir, d), { recursive: true });
  const port = await freePort();
  const conf = path.join(dir, 'glance-api.conf');
  const paste = path.join(dir, 'glance-api-paste.ini');
  // Debian's paste file has no fakeauth pipeline: add one that takes identity from the headers (`context`).
  const stock = readFileSync('/etc/glance/glance-api-paste.ini', 'utf8');
  writeFileSync(
    paste,
    `[pipeline:glance-api-fakeauth]\npipeline = cors healthcheck http_proxy_to_wsgi versionnegotiation osprofiler context rootapp\n\n${stock}`,
  );
  const lines = [
    '[DEFAULT]',
    'bind_host = 127.0.0.1',
    `bind_port = ${port}`,
    'workers = 1',
    // The current policy defaults (secure RBAC): readers may list, only members may create or upload.
    'enforce_secure_rbac = True',
    'enabled_backends = fs:file',
    `log_file = ${path.join(dir, 'glance-api.log')}`,
    '[database]',
    `connection = sqlite:///${path.join(dir, 'glance.sqlite')}`,
    '[glance_store]',
    'default_backend = fs',
    '[fs]',
    `filesystem_store_datadir = ${path.join(dir, 'images')}`,
    '[os_glance_staging_store]',
    `filesystem_store_datadir = ${path.join(dir, 'staging')}`,
    '[os_glance_tasks_store]',
    `filesystem_store_datadir = ${path.join(dir, 'tasks')}`,
    '[oslo_concurrency]',
    `lock_path = ${path.join(dir, 'locks')}`,
    '[oslo_policy]',
    'enforce_new_defaults = True',
    'enforce_scope = True',
    '[paste_deploy]',
    `config_file = ${paste}`,
    `flavor = ${opts.keystone ? 'keystone' : 'fakeauth'}`,
  ];
  if (opts.keystone) {
    const k = opts.keystone;
    lines.push(
      '[keystone_authtoken]',
      `www_authenticate_uri = ${k.authUrl}`,
      `auth_url = ${k.authUrl}`,
      'auth_type = password',
      `username = ${k.username}`,
      `password = ${k.password}`,
      `project_name = ${k.projectName}`,
      'user_domain_name = Default',
      'project_domain_name = Default',
      // The rig's Keystone catalog has public endpoints only.
      'interface = public',
    );
  }
  writeFileSync(conf, lines.join('\n') + '\n');
  await execFileP(tool('glance-manage'), ['--config-file', conf, 'db_sync'], { cwd: dir });
  const log = createWriteStream(path.join(dir, 'glance-api.out'));
  const child = spawn(tool('glance-api'), ['--config-file', conf], { cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  const died = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`glance-api exited ${code} before listening; see ${path.join(dir, 'glance-api.out')}`))),
  );
  try {
    await Promise.race([waitForPort('127.0.0.1', port, 60_000, 'glance-api'), died]);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  died.catch(() => undefined);
  return {
    address: `http://127.0.0.1:${port}`,
    dir,
    stop: () => stopProcess(child),
  };
}
