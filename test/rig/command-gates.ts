// Gated commands: a directory of wrappers (`podman`, `mkfs.ext4`, `virsh`, `cp`, ...) put first on the PATH of a rig
// sshd's sessions (a builder, a hypervisor) or of a worker process. A wrapper runs the real command unchanged, unless
// a test holds that command for arguments matching a pattern: then it runs the real command, and before it returns
// its exit status it waits until the test releases the hold. The work is done, its caller has not heard yet: a step
// that is surely in flight, for as long as a test needs to kill a worker or cancel a release there. Every call is
// logged, so a test can count how often a command ran. Test-only: production never runs these.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

export class CommandGates {
  /** Put first on PATH. */
  readonly bin: string;
  private readonly state: string;

  constructor(
    dir: string,
    readonly commands: string[],
  ) {
    this.bin = path.join(dir, 'bin');
    this.state = path.join(dir, 'state');
    mkdirSync(this.bin, { recursive: true });
    mkdirSync(this.state, { recursive: true });
    for (const name of commands) this.writeWrapper(name);
  }

  /** PATH with the wrappers first. */
  path(rest = process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'): string {
    return `${this.bin}:${rest}`;
  }

  /** From now on, `name` called with arguments matching `pattern` (grep -E on "$*") holds before it returns. */
  hold(name: string, pattern: string): void {
    this.known(name);
    writeFileSync(this.rule(name), `${pattern}\n`);
  }

  /** Calls of `name` waiting at the hold now (including those whose caller has died; not those killed). */
  held(name: string): number {
    const dir = `${this.rule(name)}.held`;
    return existsSync(dir) ? readdirSync(dir).filter((pid) => alive(Number(pid))).length : 0;
  }

  /** Lets every held call return, and stops holding. */
  release(name: string): void {
    rmSync(this.rule(name), { force: true });
  }

  /** The argument lines of every call of `name` that matched a hold (held or not yet), oldest first. */
  calls(name: string): string[] {
    const log = `${this.rule(name)}.log`;
    return existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : [];
  }

  releaseAll(): void {
    for (const name of this.commands) this.release(name);
  }

  private rule = (name: string) => path.join(this.state, name);

  private known(name: string): void {
    if (!this.commands.includes(name)) throw new Error(`${name} has no gate wrapper (gated: ${this.commands.join(', ')})`);
  }

  private writeWrapper(name: string): void {
    const real = execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
    if (!real.startsWith('/')) throw new Error(`${name} is not installed: cannot gate it`);
    const rule = this.rule(name);
    const wrapper = path.join(this.bin, name);
    writeFileSync(
      wrapper,
      `#!/bin/sh
# Gate wrapper for ${real} (test/rig/command-gates.ts): runs it; holds before returning while ${rule} matches "$*".
rule='${rule}'
if [ -e "$rule" ] && printf '%s\\n' "$*" | grep -Eq -- "$(cat "$rule" 2>/dev/null)"; then
  printf '%s\\n' "$*" >> "$rule.log"
  '${real}' "$@"
  status=$?
  mkdir -p "$rule.held" && printf '%s\\n' "$*" > "$rule.held/$$"
  while [ -e "$rule" ]; do sleep 0.2; done
  rm -f "$rule.held/$$"
  exit $status
fi
exec '${real}' "$@"
`,
    );
    chmodSync(wrapper, 0o755);
  }
}
