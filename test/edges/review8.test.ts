// Review of two shortcuts: ensureHome trusting homeFromEnv's check, and a handed-off run's
// started_at taken from its start file's mtime.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  binPath,
  eventually,
  gatedJob,
  spawnCollect,
  tmpfsUnavailable,
  withHome,
  withSmallDisk,
  type TestHome,
} from '../helpers';

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
      for (const dir of ['jobs', 'logs', 'run']) {
        assert.equal(readdirSync(join(home, dir)), [], `nothing in their ${dir}`);
      }
    } finally {
      child.kill('SIGKILL');
      await h.killHome(home);
    }
  }),
);

/** A run of queue p its queue's hand-off started, in the home at env.BGMON_HOME; its start file. */
async function handedOff(h: TestHome, env: { BGMON_HOME: string }) {
  const gate = join(h.dir, 'gate');
  const first = await h.run('bgmon-start', ['--name', 'first', '--queue', 'p', '--', ...gatedJob(gate)], { env });
  assert.is(first.code, 0, first.stderr);
  const second = await h.run('bgmon-start', ['--name', 'second', '--queue', 'p', '--', 'sleep', '30'], { env });
  assert.is(second.code, 0, second.stderr);
  const queued = JSON.parse(second.stdout);
  writeFileSync(gate, '');
  await eventually(
    async () => {
      const r = await h.run('bgmon-status', ['second', '--json'], { env });
      return r.code === 0 && JSON.parse(r.stdout).sup_pid === JSON.parse(first.stdout).sup_pid;
    },
    15_000,
    'second handed off',
  );
  return { queued, start: join(env.BGMON_HOME, 'run', 'queues', 'p.runs', String(queued.queue_seq), 'start') };
}

test(
  'a start file whose mtime no Date can hold (a tmpfs takes any) is read, not a crash of every reader',
  withHome(async (h) => {
    if (tmpfsUnavailable()) return; // needs a tmpfs, whose times are not capped at 2446 as ext4's
    await withSmallDisk(h, '4m', async (_mnt, env) => {
      const { queued, start } = await handedOff(h, env);
      for (const secs of [1e14, -1e14, Date.now() / 1000 + 86_400]) {
        utimesSync(start, secs, secs);
        for (const args of [['second', '--json'], ['--json']]) {
          const r = await h.run('bgmon-status', args, { env });
          assert.is(r.code, 0, `mtime ${secs}, bgmon-status ${args.join(' ')}: ${r.stderr}`);
          const rec = JSON.parse(r.stdout.split('\n').find((l) => l.includes('"second"'))!);
          assert.is(rec.status, 'RUNNING');
          assert.ok(rec.started_at >= queued.created_at, `mtime ${secs}: not before it was queued`);
          assert.ok(Date.parse(rec.started_at) <= Date.now(), `mtime ${secs}: not in the future: ${rec.started_at}`);
        }
      }
      const stop = await h.run('bgmon-stop', ['second', '--grace', '0'], { env });
      assert.is(stop.code, 0, stop.stderr);
      const folded = JSON.parse(readFileSync(join(env.BGMON_HOME, 'jobs', 'second.json'), 'utf8'));
      assert.is(folded.status, 'STOPPED');
      assert.ok(folded.started_at <= folded.ended_at && Date.parse(folded.ended_at) <= Date.now(), folded.ended_at);
    });
  }),
);

test(
  'an end file or log whose mtime no Date can hold is read, not a crash of every reader',
  withHome(async (h) => {
    if (tmpfsUnavailable()) return;
    await withSmallDisk(h, '4m', async (_mnt, env) => {
      const r = await h.run('bgmon-start', ['--name', 'x', '--', 'sh', '-c', 'echo hi; exec sleep 30'], { env });
      assert.is(r.code, 0, r.stderr);
      const rec = JSON.parse(r.stdout);
      const log = join(env.BGMON_HOME, 'logs', 'x.log');
      await eventually(() => readFileSync(log, 'utf8') === 'hi\n', 15_000, 'its output');
      for (const secs of [1e14, -1e14]) {
        utimesSync(join(env.BGMON_HOME, 'jobs', `.x@${rec.id}.end`), secs, secs);
        utimesSync(log, secs, secs);
        const s = await h.run('bgmon-status', ['x', '--json'], { env });
        assert.is(s.code, 0, `mtime ${secs}: ${s.stderr}`);
        const now = JSON.parse(s.stdout);
        assert.is(now.status, 'RUNNING');
        if (now.last_output_at != null) assert.ok(Date.parse(now.last_output_at) <= Date.now(), now.last_output_at);
      }
    });
  }),
);

test.run();
