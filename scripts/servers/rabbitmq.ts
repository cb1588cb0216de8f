// A real RabbitMQ (Debian's rabbitmq-server, AMQP 0-9-1 as Fedora's message bus speaks it) on loopback, in a
// directory of its own. Debian's wrapper drops to the `rabbitmq` user, so the directory is handed to that user.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, tool, waitForPort } from './tools';

export interface RabbitMq {
  /** amqp://guest:guest@127.0.0.1:PORT (guest may log in from loopback only). */
  url: string;
  stop(): Promise<void>;
}

/**
 * `logDir` is where a link to its files is left for reading after a run. The files themselves live in a directory of
 * their own under the system's temp directory: Debian's wrapper runs the node as the `rabbitmq` user, who cannot
 * enter a clone that lives under a 0700 directory (a `mktemp -d`), as CI's may.
 */
export async function startRabbitMq(logDir: string): Promise<RabbitMq> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bootc-rig-rabbitmq-'));
  mkdirSync(path.dirname(logDir), { recursive: true });
  rmSync(logDir, { recursive: true, force: true });
  symlinkSync(dir, logDir);
  const [port, dist, epmdPort] = [await freePort(), await freePort(), await freePort()];
  const node = `rig${port}@localhost`;
  const plugins = path.join(dir, 'enabled_plugins');
  writeFileSync(plugins, '[].\n');
  const env = {
    ...process.env,
    HOME: dir,
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(dist),
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    // An epmd of its own, so stopping the rig never ends another RabbitMQ's epmd on this machine.
    ERL_EPMD_PORT: String(epmdPort),
    ERL_EPMD_ADDRESS: '127.0.0.1',
    RABBITMQ_MNESIA_BASE: path.join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: path.join(dir, 'log'),
    RABBITMQ_PID_FILE: path.join(dir, 'rabbitmq.pid'),
    RABBITMQ_FEATURE_FLAGS_FILE: path.join(dir, 'feature_flags'),
    RABBITMQ_ENABLED_PLUGINS_FILE: plugins,
  };
  execFileSync('chown', ['-R', 'rabbitmq:rabbitmq', dir]);
  const log = openSync(path.join(dir, 'rabbitmq-server.out'), 'a');
  const child = spawn(tool('rabbitmq-server'), [], { env, detached: true, stdio: ['ignore', log, log] });
  child.unref();
  await waitForPort('127.0.0.1', port, 90_000, `rabbitmq-server (see ${dir}/log)`);
  return {
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    async stop() {
      // Debian's wrapper runs the node in a session of its own; its pid file names the node's process.
      const pidFile = env.RABBITMQ_PID_FILE;
      const pid = Number(existsSync(pidFile) ? readFileSync(pidFile, 'utf8').trim() : child.pid);
      const alive = () => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      };
      if (alive()) process.kill(pid, 'SIGTERM'); // Erlang/OTP stops the node cleanly on SIGTERM
      for (let i = 0; i < 100 && alive(); i++) await new Promise((r) => setTimeout(r, 100));
      if (alive()) process.kill(pid, 'SIGKILL');
      // The node started its own epmd (on ERL_EPMD_PORT), which outlives it as a daemon: end that one only.
      try {
        execFileSync('epmd', ['-kill'], { env, stdio: 'ignore', timeout: 10_000 });
      } catch {
        // none running
      }
      // The database is the bulk of it; the logs stay for reading after the run (linked from logDir).
      rmSync(env.RABBITMQ_MNESIA_BASE, { recursive: true, force: true });
    },
  };
}
