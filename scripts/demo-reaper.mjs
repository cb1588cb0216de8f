// The backstop of `npm run demo`: stops what the demo started when the demo itself could not. Run under `tsx`, a
// Ctrl-C reaches the demo through tsx's signal relay, which SIGKILLs the demo when its event loop does not answer
// within 60 ms (a worker hashing an artifact is enough); a closed terminal or `kill -9` end it the same way. The
// demo starts this in a session of its own with a pipe on stdin that only the demo holds: end of input means the
// demo is gone, however it went. Then this kills every process listed in the state file that is still the same
// process, and removes the demo's libvirt pool (and libvirtd, if the demo started it and no other rig pool is in
// it). The demo also runs it once at start with stdin closed, to clear what an earlier run left. A process is known
// by its pid and start time: its command line can change while it runs (OpenSSH's listener rewrites its own).
// Plain JavaScript, so it starts without the TypeScript loader.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const stateFile = process.argv[2];
const say = (line) => process.stdout.write(`[demo] ${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The start time of pid (clock ticks after boot, /proc/<pid>/stat field 22); '' once it is gone. */
function startTime(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}

/** Still the process the demo recorded: a pid reused since is another process, and is left alone. */
const same = (p) => !!p.start && startTime(p.pid) === p.start;

function virsh(args) {
  return execFileSync('virsh', ['-q', '-c', 'qemu:///system', ...args], { encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'ignore'] });
}

async function reap() {
  let state;
  try {
    state = JSON.parse(readFileSync(stateFile, 'utf8'));
  } catch {
    return;
  }
  const left = (state.processes || []).filter(same);
  if (left.length) {
    say(`stopping ${left.length} process(es) the demo left running: ${left.map((p) => p.name).join(', ')}`);
    for (const p of left) signal(p.pid, 'SIGTERM');
    const deadline = Date.now() + 3_000;
    while (left.some(same) && Date.now() < deadline) await sleep(100);
    for (const p of left) if (same(p)) signal(p.pid, 'SIGKILL');
  }
  if (state.pool) {
    try {
      const pools = virsh(['pool-list', '--all', '--name']).split('\n').map((l) => l.trim());
      if (pools.includes(state.pool)) {
        say(`removing libvirt pool ${state.pool}`);
        for (const vol of virsh(['vol-list', '--pool', state.pool]).split('\n').map((l) => l.trim().split(/\s+/)[0]).filter(Boolean))
          tryVirsh(['vol-delete', '--pool', state.pool, vol]);
        tryVirsh(['pool-destroy', state.pool]);
        tryVirsh(['pool-undefine', state.pool]);
      }
      const rigPools = virsh(['pool-list', '--all', '--name']).split('\n').filter((l) => l.trim().startsWith('bootc-rig-'));
      if (state.libvirtd && !rigPools.length && same(state.libvirtd)) signal(state.libvirtd.pid, 'SIGTERM');
    } catch {
      /* libvirtd not answering: nothing more to do here */
    }
  }
}

function tryVirsh(args) {
  try {
    virsh(args);
  } catch {
    /* already gone */
  }
}

function signal(pid, sig) {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone */
  }
}

// The demo's stdout may be a pipe that closed with it: lose the messages, not the cleanup.
process.stdout.on('error', () => undefined);
// Ctrl-C in the terminal is the demo's to handle; this one only waits for the demo to be gone.
process.on('SIGINT', () => undefined);
process.on('SIGHUP', () => undefined);
process.stdin.on('data', () => undefined);
// A pipe reports 'close' when the demo is gone; /dev/null (the run at start) reports 'end' and may never 'close'.
let reaping = false;
const onEnd = () => {
  if (reaping) return;
  reaping = true;
  reap().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`[demo] cleanup failed: ${err.message}\n`);
      process.exit(1);
    },
  );
};
process.stdin.on('end', onEnd);
process.stdin.on('close', onEnd);
process.stdin.resume();
