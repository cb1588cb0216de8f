// What `npm run demo` starts before its worker: the Temporal dev server with its Web UI, three OpenSSH hosts (two
// builder VMs and a hypervisor), a registry with the source image, the bootc-image-builder stand-in, moto, libvirtd
// with a pool of the demo's own, and glance-api; then the demo definition with these servers' addresses filled in.
// Every start registers its stop with the Stopper first thing, so Ctrl-C at any moment stops what is up.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { startGlance, type Glance } from './servers/glance';
import { createPool, startLibvirtd, type RigPool } from './servers/libvirtd';
import { startMoto } from './servers/moto';
import { pushSourceImage, startRegistry } from './servers/registry';
import { startTemporal, type TemporalDevServer } from './servers/temporal';
import { clientKeys, SshServer, type RigKeys } from './servers/sshd';
import { ensureBibStandinImage, standinEngine, type StandinKnobs } from '../test/standins/bootc-image-builder/image';
import { ADDRESSES, type DemoPorts } from './demo-ports';
import { descendants, type Stopper } from './demo-stop';

/**
 * Where the builders' work and the engine config go: one directory per clone, so the demos (or demo tests) of two
 * clones on one machine never write each other's registries.conf. examples/demo.yaml names
 * /var/tmp/bootc-release-demo; the definition the worker gets names this one.
 */
export const BUILDERS_DIR = `/var/tmp/bootc-release-demo-${createHash('sha256').update(path.resolve(__dirname, '..')).digest('hex').slice(0, 8)}`;
export const BIB_IMAGE = 'localhost/bootc-release/bib-standin:demo';
export const GLANCE_PROJECT = 'demo';

async function portClosed(host: string, port: number): Promise<void> {
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host, port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (!open) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface DemoStack {
  temporal: TemporalDevServer;
  keys: RigKeys;
  motoEndpoint: string;
  glance: Glance;
  pool: RigPool;
  /** The definition the worker knows by name: examples/demo.yaml with the addresses above. */
  definitionFile: string;
}

export async function startDemoStack(opts: {
  demoDir: string;
  examplesFile: string;
  ports: DemoPorts;
  build: StandinKnobs;
  stopper: Stopper;
  say: (line: string) => void;
}): Promise<DemoStack> {
  const { demoDir, ports, stopper, say } = opts;
  const logs = path.join(demoDir, 'logs');

  // The slow starters (glance-api ~6 s, libvirtd) run while the rest comes up.
  const glanceP = startGlance(path.join(demoDir, 'glance')).then((g) => {
    stopper.add('glance-api', g.stop);
    return g;
  });
  const motoP = startMoto(logs).then((m) => {
    stopper.add('moto', m.stop);
    return m;
  });
  const poolP = startLibvirtd(logs).then(async (libvirtd) => {
    // libvirtd may be another user's (startLibvirtd reuses a running one): only the demo's pool is removed, and
    // the daemon stops only if the demo started it and no other pool is in it.
    stopper.spare('libvirtd');
    stopper.note({ libvirtdPid: descendants(process.pid).find((p) => p.comm === 'libvirtd')?.pid });
    const made: { pool?: RigPool } = {};
    stopper.add('libvirtd pool', async () => {
      await made.pool?.remove();
      await libvirtd.stop();
    });
    made.pool = await createPool(demoDir, 'demo');
    stopper.note({ pool: made.pool.name });
    return made.pool;
  });
  // Settle the background starts even if a foreground one throws first, so no rejection goes unhandled.
  const background = Promise.allSettled([glanceP, motoP, poolP]);

  const temporal = await startTemporal(logs, { port: ports.temporal, uiPort: ports.ui, headless: false });
  stopper.add('Temporal dev server', temporal.stop);
  say(`Temporal dev server ${temporal.address}, Web UI ${temporal.uiAddress}`);

  const keys = clientKeys(path.join(demoDir, 'keys'));
  for (const address of [ADDRESSES.x86_64, ADDRESSES.aarch64, ADDRESSES.services]) {
    const host = await SshServer.start(path.join(demoDir, 'hosts'), address, keys, { port: ports.ssh });
    // Ctrl-C reaches sshd too (same process group), and SshServer.stop waits for an exit that has already
    // happened when a signal ended it: a closed port is proof enough that the listener is gone.
    stopper.add(`sshd ${address}`, () => Promise.race([host.stop(), portClosed(address, ports.ssh)]));
  }
  say(`builder VMs ${ADDRESSES.x86_64}:${ports.ssh} (x86_64) and ${ADDRESSES.aarch64}:${ports.ssh} (aarch64), hypervisor ${ADDRESSES.services}:${ports.ssh} (OpenSSH)`);

  const registry = await startRegistry(path.join(demoDir, 'registry'), { address: ADDRESSES.services, port: ports.registry });
  stopper.add('registry', registry.stop);
  const source = pushSourceImage(registry.address, 'bootc-release-demo/builder:latest', `demo-${Date.now()}`);
  say(`source image ${source} pushed to the registry`);
  standinEngine(path.join(BUILDERS_DIR, 'engine'), opts.build, [registry.address]);
  execFileSync('podman', ['tag', ensureBibStandinImage(), BIB_IMAGE]);
  say('bootc-image-builder stand-in image ready');

  await background;
  const [glance, moto, pool] = [await glanceP, await motoP, await poolP];
  say(`moto (AWS) ${moto.address}, glance-api ${glance.address}, libvirt pool ${pool.name}`);

  const definitionFile = path.join(demoDir, 'definitions', 'demo.yaml');
  mkdirSync(path.dirname(definitionFile), { recursive: true });
  const doc = parseDocument(readFileSync(opts.examplesFile, 'utf8'));
  doc.setIn(['source', 'image'], source);
  for (const arch of ['x86_64', 'aarch64'] as const) doc.setIn(['architectures', arch, 'builder', 'hosts', 0, 'port'], ports.ssh);
  doc.setIn(['targets', 'aws-local', 'credentials', 'endpoint'], moto.address);
  doc.setIn(['targets', 'hypervisor', 'ssh', 'port'], ports.ssh);
  doc.setIn(['targets', 'hypervisor', 'pool'], pool.name);
  doc.setIn(['targets', 'glance-local', 'imageUrl'], glance.address);
  const engine = doc.getIn(['imageBuilder', 'engine']) as { items: { value: string }[] };
  engine.items.forEach((item, i) => doc.setIn(['imageBuilder', 'engine', i], item.value.replace('/var/tmp/bootc-release-demo/', `${BUILDERS_DIR}/`)));
  for (const arch of ['x86_64', 'aarch64'] as const) doc.setIn(['architectures', arch, 'builder', 'workDir'], path.join(BUILDERS_DIR, arch));
  doc.commentBefore = ` Written by npm run demo from examples/demo.yaml, with the addresses of the servers it started.\n${doc.commentBefore ?? ''}`;
  writeFileSync(definitionFile, doc.toString());
  return { temporal, keys, motoEndpoint: moto.address, glance, pool, definitionFile };
}
