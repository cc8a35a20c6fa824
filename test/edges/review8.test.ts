// Review of two shortcuts: ensureHome trusting homeFromEnv's check, and a handed-off run's
// started_at taken from its start file's mtime.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { binPath, eventually, spawnCollect, withHome } from '../helpers';

const NOBODY = 65534;
// read(2)'s number: /proc/PID/syscall says a process waits in read(0, ...)
const READ: Record<string, number> = { x64: 0, arm64: 63, riscv64: 63 };

const readingStdin = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/syscall`, 'latin1').startsWith(`${READ[process.arch]} 0x0 `);
  } catch {
    return false;
  }
};

test(
  'bgmon-start - checks the home again after reading stdin: one swapped meanwhile is refused',
  withHome(async (h) => {
    if (process.getuid?.() !== 0 || READ[process.arch] === undefined) return; // needs another uid
    const sticky = h.subdir('sticky');
    chmodSync(sticky, 0o1777);
    const home = join(sticky, 'home');
    const env = { BGMON_HOME: home };
    const warm = await h.run('bgmon-start', ['--name', 'warm', '--', 'true'], { env });
    assert.is(warm.code, 0, warm.stderr);
    await h.killHome(home);

    // the home is whole and safe when bgmon-start starts, then (a tmp cleaner, its owner) removes
    // it while stdin is still open, and another user makes the path a directory of theirs
    const { child, done } = spawnCollect(
      process.execPath,
      [binPath('bgmon-start'), '-'],
      { env: { ...h.env, ...env }, cwd: h.dir },
      { openStdin: true },
    );
    try {
      await eventually(() => readingStdin(child.pid!), 15_000, 'bgmon-start reading stdin');
      rmSync(home, { recursive: true, force: true });
      for (const dir of ['', 'jobs', 'logs', 'run']) {
        mkdirSync(join(home, dir));
        chmodSync(join(home, dir), 0o777);
        chownSync(join(home, dir), NOBODY, NOBODY);
      }
      child.stdin!.end(JSON.stringify({ name: 'x', cmd: ['true'] }) + '\n');
      const r = await done;
      assert.is(r.code, 1, `${r.stdout} ${r.stderr}`);
      assert.match(r.stderr, /^bgmon-start: refusing BGMON_HOME .*belongs to uid 65534/);
      for (const dir of ['jobs', 'logs', 'run']) assert.equal(readdirSync(join(home, dir)), [], `nothing in their ${dir}`);
    } finally {
      child.kill('SIGKILL');
      await h.killHome(home);
    }
  }),
);

test.run();
