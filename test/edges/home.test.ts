// The home and our files in it: no write through someone else's link, no hang on a foreign
// or stuck lock, and removal works on a full disk.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { enqueue, readStat, writeRecord, type Home } from 'bgmon-state';
import {
  eventually,
  isAlive,
  lines,
  listDir,
  slowTest,
  untilLocksReleased,
  untilOnDisk,
  withHome,
  type Result,
  type TestHome,
} from '../helpers';

const NOBODY = 65534;

function oneLine(r: Result, code: number, what: string): void {
  assert.is(r.code, code, `${what}: ${r.stderr}`);
  assert.is(r.stdout, '', `${what}: nothing on stdout`);
  assert.is(r.stderr.split('\n').length, 2, `${what}: exactly one line on stderr: ${JSON.stringify(r.stderr)}`);
}

const COMMANDS: [string, string[]][] = [
  ['bgmon-start', ['--name', 'x', '--', 'true']],
  ['bgmon-status', []],
  ['bgmon-rm', ['--finished']],
  ['bgmon-wait', ['x', '--timeout', '1s']],
];

async function refused(h: TestHome, home: string, what: string): Promise<void> {
  for (const [bin, args] of COMMANDS) {
    const r = await h.run(bin, args, { env: { BGMON_HOME: home } });
    oneLine(r, 1, `${bin} with ${what}`);
    assert.match(r.stderr, /refusing BGMON_HOME/, `${bin} with ${what}`);
  }
}

test(
  'a home reached through a symlink another user owns is refused',
  withHome(async (h) => {
    const mine = join(h.dir, 'mine');
    mkdirSync(mine, { mode: 0o700 });
    const link = join(h.dir, 'theirs');
    symlinkSync(mine, link);
    lchownSync(link, NOBODY, NOBODY);
    await refused(h, link, 'a home that is their symlink');
    // a link of theirs in the middle of the path is just as changeable
    const mid = join(h.dir, 'midlink');
    symlinkSync(h.dir, mid);
    lchownSync(mid, NOBODY, NOBODY);
    await refused(h, join(mid, 'mine'), 'their symlink as a parent');
    assert.equal(readdirSync(mine), [], 'nothing written through their link');
  }),
);

slowTest(
  'a home under a directory others can change is refused (ssh StrictModes)',
  withHome(async (h) => {
    const cases: [string, number, number][] = [
      ['world', 0o777, 0],
      ['group', 0o770, 0],
      ['theirs', 0o755, NOBODY],
      ['stickytheirs', 0o1777, NOBODY],
    ];
    for (const [dir, mode, uid] of cases) {
      const parent = join(h.dir, dir);
      mkdirSync(parent);
      chmodSync(parent, mode);
      const home = join(parent, 'home');
      mkdirSync(home, { mode: 0o700 });
      if (uid) chownSync(parent, uid, uid);
      await refused(h, home, `a home under ${dir} (${mode.toString(8)})`);
      await refused(h, join(parent, 'new', 'home'), `a new home under ${dir}`);
      assert.equal(readdirSync(home), [], `nothing written under ${dir}`);
      assert.not.ok(existsSync(join(parent, 'new')));
    }
    // a sticky world-writable directory owned by root (like /tmp) is fine, as is a home of your own
    const sticky = h.subdir('sticky');
    chmodSync(sticky, 0o1777);
    const ok = await h.run('bgmon-start', ['--name', 'x', '--', 'true'], { env: { BGMON_HOME: join(sticky, 'home') } });
    assert.is(ok.code, 0, ok.stderr);
    await h.killHome(join(sticky, 'home'));
  }),
);

slowTest(
  'a symlink home of your own is resolved once: every path is the real one, a swapped link redirects nothing',
  withHome(async (h) => {
    const a = join(h.dir, 'a');
    const b = join(h.dir, 'b');
    mkdirSync(a, { mode: 0o700 });
    mkdirSync(b, { mode: 0o700 });
    const link = join(h.dir, 'link');
    symlinkSync(a, link);
    const env = { BGMON_HOME: link };
    const first = await h.run('bgmon-start', ['--name', 'first', '--', 'sh', '-c', 'echo "$BGMON_HOME"'], { env });
    assert.is(first.code, 0, first.stderr);
    const rec = JSON.parse(first.stdout);
    assert.is(rec.log, join(realpathSync(a), 'logs', 'first.log'), 'the record names the resolved log path');
    const w = await h.run('bgmon-wait', ['first'], { env: { BGMON_HOME: a } });
    assert.is(w.code, 0, w.stderr);
    assert.is(
      readFileSync(rec.log, 'utf8'),
      `${realpathSync(a)}\n`,
      'the job and its supervisor see the resolved home',
    );
    // flip the link between a and b as fast as possible while jobs start and end
    const flipper = spawn(
      'sh',
      [
        '-c',
        `while :; do ln -sfn ${b} ${link}.t && mv -Tf ${link}.t ${link}; ln -sfn ${a} ${link}.t && mv -Tf ` +
          `${link}.t ${link}; done`,
      ],
      { stdio: 'ignore' },
    );
    try {
      const starts = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          h.run('bgmon-start', ['--name', `s${i}`, '--', 'sh', '-c', 'echo hi'], { env }),
        ),
      );
      for (const r of starts) assert.is(r.code, 0, r.stderr);
      for (const r of starts) {
        const s = JSON.parse(r.stdout);
        const dir = s.log.startsWith(`${a}/`) ? a : b;
        assert.ok(s.log === join(dir, 'logs', `${s.name}.log`), `log ${s.log} is under a or b`);
        const done = await h.run('bgmon-wait', [s.name, '--timeout', '20s'], { env: { BGMON_HOME: dir } });
        assert.is(done.code, 0, `${s.name} ended in the home it started in: ${done.stdout}${done.stderr}`);
        assert.is(readFileSync(s.log, 'utf8'), 'hi\n');
      }
    } finally {
      flipper.kill('SIGKILL');
    }
    for (const dir of [a, b]) {
      for (const file of listDir(join(dir, 'jobs'))) {
        if (!file.endsWith('.json')) continue;
        const r = JSON.parse(readFileSync(join(dir, 'jobs', file), 'utf8'));
        assert.ok(r.log.startsWith(`${dir}/logs/`), `${dir}/jobs/${file} names a log in its own home: ${r.log}`);
        assert.ok(existsSync(r.log));
      }
      await untilLocksReleased(dir);
    }
    await h.killHome(a);
    await h.killHome(b);
  }),
);

test(
  'records are never read through a symlink, a hard link or a FIFO',
  withHome(async (h) => {
    await h.start('good', ['true']);
    const good = await untilOnDisk(h, 'good', 'SUCCEEDED');
    const jobs = join(h.root, 'jobs');
    const outside = join(h.dir, 'outside.json');
    writeFileSync(outside, JSON.stringify({ ...good, name: 'viasym' }) + '\n');
    symlinkSync(outside, join(jobs, 'viasym.json'));
    const hard = join(h.dir, 'hard.json');
    writeFileSync(hard, JSON.stringify({ ...good, name: 'viahard' }) + '\n');
    linkSync(hard, join(jobs, 'viahard.json'));
    execFileSync('mkfifo', [join(jobs, 'fifo.json')]);
    for (const n of ['viasym', 'viahard', 'fifo']) h.handWritten.add(n);
    try {
      const r = await h.run('bgmon-status', ['--json'], { timeoutMs: 15_000 });
      assert.is(r.code, 1, r.stderr);
      assert.equal(
        lines(r.stdout).map((x) => x.name),
        ['good'],
      );
      for (const n of ['viasym', 'viahard', 'fifo'])
        assert.match(r.stderr, new RegExp(`${n}\\.json: corrupt record \\(`), n);
      const one = await h.run('bgmon-status', ['viasym']);
      oneLine(one, 1, 'a symlinked record named');
    } finally {
      unlinkSync(join(jobs, 'fifo.json')); // the cleanup reads every record file
    }
  }),
);

function unitHome(h: TestHome): Home {
  const root = realpathSync(h.dir);
  const home = { root, jobs: join(root, 'jobs'), logs: join(root, 'logs'), run: join(root, 'run') };
  for (const d of [home.jobs, home.logs, home.run]) mkdirSync(d, { recursive: true, mode: 0o700 });
  return home;
}

test(
  'record and queue files are written through fresh temp files, never through a planted link',
  withHome(async (h) => {
    const home = unitHome(h);
    const victim = join(h.dir, 'victim');
    writeFileSync(victim, 'precious\n');
    // links planted at every temp name this process could pick
    for (let n = 0; n <= 200; n++) {
      symlinkSync(victim, join(home.jobs, `.x.${process.pid}.${n}.tmp`));
      symlinkSync(victim, join(home.run, `x.queued.${process.pid}.${n}.tmp`));
    }
    symlinkSync(victim, join(home.run, `x.queued.${process.pid}.tmp`));
    const rec: any = {
      v: 1,
      name: 'x',
      id: 'i1',
      status: 'QUEUED',
      cmd: ['true'],
      cwd: '/',
      pid: null,
      created_at: new Date().toISOString(),
      started_at: null,
      ended_at: null,
      exit_code: null,
      signal: null,
      log: join(home.logs, 'x.log'),
      previous_log: null,
      after: ['y'],
      host: 'h',
      boot_id: null,
      starttime: null,
      sup_pid: null,
      sup_starttime: null,
    };
    writeRecord(home, rec);
    enqueue(home, rec, { SECRET: 'do-not-leak' });
    assert.is(readFileSync(victim, 'utf8'), 'precious\n', 'nothing written through a link');
    for (const file of [join(home.jobs, 'x.json'), join(home.run, 'x.queued')]) {
      const st = lstatSync(file);
      assert.ok(st.isFile() && st.nlink === 1, `${file} is a fresh file of ours`);
      assert.is(st.mode & 0o777, 0o600);
    }
    assert.is(JSON.parse(readFileSync(join(home.jobs, 'x.json'), 'utf8')).id, 'i1');
  }),
);

test(
  'a queue entry that is a symlink is not followed',
  withHome(async (h) => {
    // a ends when the test says, not after a sleep the load could outlast before q is queued
    const release = join(h.dir, 'release');
    const a = await h.start('a', ['sh', '-c', `while [ ! -e '${release}' ]; do sleep 0.05; done`]);
    const q = await h.start('q', ['sh', '-c', 'echo "mark=$MARK"'], ['--after', 'a']);
    assert.is(q.status, 'QUEUED');
    const entry = join(h.root, 'run', 'q.queued');
    const planted = join(h.dir, 'planted.json');
    writeFileSync(planted, JSON.stringify({ id: q.id, env: { ...process.env, BGMON_HOME: h.root, MARK: 'planted' } }));
    renameSync(entry, `${entry}.real`);
    symlinkSync(planted, entry);
    writeFileSync(release, '');
    await h.run('bgmon-wait', ['a', '--timeout', '20s']);
    assert.ok(a.pid > 0);
    // a's supervisor advances the queue after its end is folded: the planted link is dropped then
    await eventually(
      () => !listDir(join(h.root, 'run')).includes('q.queued'),
      15_000,
      'the queue to drop the planted link',
    );
    await h.run('bgmon-status', []);
    const log = join(h.root, 'logs', 'q.log');
    assert.not.ok(
      existsSync(log) && readFileSync(log, 'utf8').includes('mark=planted'),
      'the job never ran with an environment read through a link',
    );
  }),
);

test(
  'the previous log is kept only when it is a plain file of ours, never a link',
  withHome(async (h) => {
    await h.start('x', ['true']);
    await eventually(async () => (await h.status('x')).status === 'SUCCEEDED');
    const log = join(h.root, 'logs', 'x.log');
    const outside = join(h.dir, 'outside.log');
    writeFileSync(outside, 'not yours\n');
    renameSync(log, join(h.dir, 'moved.log'));
    symlinkSync(outside, log);
    const again = await h.start('x', ['true']);
    assert.is(again.previous_log, null, 'a symlink is not kept as a log');
    for (const f of listDir(join(h.root, 'logs')))
      assert.not.ok(lstatSync(join(h.root, 'logs', f)).isSymbolicLink(), `${f} is not a link`);
    assert.is(readFileSync(outside, 'utf8'), 'not yours\n');
  }),
);

test(
  'a symlink, directory or FIFO at a lock path: a clear error naming it, at once, no hang',
  withHome(async (h) => {
    await h.start('seed', ['true']);
    const run = join(h.root, 'run');
    symlinkSync(join(h.dir, 'nowhere'), join(run, 'dangling.lock'));
    symlinkSync('/etc/passwd', join(run, 'passwd.lock'));
    mkdirSync(join(run, 'dir.lock'));
    execFileSync('mkfifo', [join(run, 'fifo.lock')]);
    for (const name of ['dangling', 'passwd', 'dir', 'fifo']) {
      const r = await h.run('bgmon-start', ['--name', name, '--', 'true'], { timeoutMs: 20_000 });
      oneLine(r, 1, `start with a ${name} at the lock`);
      assert.ok(r.stderr.includes(join(run, `${name}.lock`)), `names the lock: ${r.stderr}`);
      assert.ok(r.ms < 5000, `${name}: no wait (${r.ms} ms)`);
      assert.not.ok(existsSync(join(h.root, 'jobs', `${name}.json`)));
    }
    assert.ok(existsSync('/etc/passwd'));
  }),
);

slowTest(
  'a stopped lock holder: start gives up with a clear error; status still lists, noting the lock',
  withHome(async (h) => {
    const holder = h.spawnOutside('sleep', ['1000']);
    await eventually(() => readStat(holder.pid!) !== null);
    process.kill(holder.pid!, 'SIGSTOP');
    await eventually(() => readStat(holder.pid!)?.state === 'T');
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();
    const identity = `${holder.pid} ${readStat(holder.pid!)!.starttime} ${boot}\n`;
    const run = join(h.root, 'run');
    await h.start('seed', ['true']);
    writeFileSync(join(run, 'held.lock'), identity, { mode: 0o600 });
    const start = await h.run('bgmon-start', ['--name', 'held', '--', 'true'], { timeoutMs: 40_000 });
    oneLine(start, 1, 'start behind a stopped holder');
    assert.ok(start.stderr.includes(join(run, 'held.lock')) && start.stderr.includes(String(holder.pid)), start.stderr);
    assert.not.ok(existsSync(join(h.root, 'jobs', 'held.json')));
    // a queued job ready to leave the queue, whose lock the stopped process holds
    await h.start('a', ['sleep', '1000']);
    const q = await h.start('q', ['true'], ['--after', 'a']);
    assert.is(q.status, 'QUEUED');
    writeFileSync(join(run, 'q.lock'), identity, { mode: 0o600 });
    await h.run('bgmon-stop', ['a', '--grace', '0'], { timeoutMs: 40_000 });
    const status = await h.run('bgmon-status', ['--json'], { timeoutMs: 40_000 });
    assert.is(status.code, 0, status.stderr);
    assert.equal(
      lines(status.stdout)
        .map((r) => r.name)
        .sort(),
      ['a', 'q', 'seed'],
    );
    assert.ok(status.stderr.includes(join(run, 'q.lock')), `a note names the lock: ${status.stderr}`);
    assert.is(status.stderr.trim().split('\n').length, 1, status.stderr);
    assert.ok(isAlive(holder.pid!), 'the holder itself is left alone');
  }),
);

slowTest(
  'on a full disk bgmon-rm frees space and no command prints an internal error',
  withHome(async (h) => {
    const mnt = h.subdir('small');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', mnt], { stdio: 'ignore' });
    } catch {
      console.log(
        '    SKIP: cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN); the full-disk rm case was not run',
      );
      return;
    }
    const home = join(mnt, 'home');
    const env = { BGMON_HOME: home };
    try {
      for (const name of ['a', 'b', 'c']) {
        assert.is(
          (await h.run('bgmon-start', ['--name', name, '--', 'sh', '-c', 'head -c 100000 /dev/zero'], { env })).code,
          0,
        );
        assert.is((await h.run('bgmon-wait', [name, '--timeout', '20s'], { env })).code, 0);
      }
      try {
        execFileSync('sh', ['-c', `head -c 4000000 /dev/zero > ${join(mnt, 'fill')}`], { stdio: 'ignore' });
      } catch {}
      const full = (() => {
        try {
          writeFileSync(join(mnt, 'probe'), 'x');
          return false;
        } catch (err) {
          return (err as NodeJS.ErrnoException).code === 'ENOSPC';
        }
      })();
      assert.ok(full, 'the disk is full');
      for (const [bin, args] of [
        ['bgmon-start', ['--name', 'd', '--', 'true']],
        ['bgmon-start', ['--name', 'e', '--after', 'a', '--', 'true']],
      ] as [string, string[]][]) {
        const r = await h.run(bin, args, { env });
        assert.not.match(r.stderr, /internal error|\n\s+at /, `${bin} ${args.join(' ')}: ${r.stderr}`);
        assert.ok(r.stderr.split('\n').filter(Boolean).length <= 1, r.stderr);
        if (r.code !== 0) assert.is(r.code, 1, r.stderr);
      }
      const rm = await h.run('bgmon-rm', ['a'], { env });
      assert.is(rm.code, 0, rm.stderr);
      assert.equal(
        lines(rm.stdout).map((r) => r.name),
        ['a'],
      );
      const sweep = await h.run('bgmon-rm', ['--finished'], { env });
      assert.is(sweep.code, 0, sweep.stderr);
      assert.ok(lines(sweep.stdout).some((r) => r.name === 'b'));
      assert.equal(
        listDir(join(home, 'logs')).filter((f) => /^[abc][.@]/.test(f)),
        [],
        'their logs are gone',
      );
      await untilLocksReleased(home);
    } finally {
      await h.killHome(home);
      execFileSync('umount', ['-l', mnt], { stdio: 'ignore' });
    }
  }),
);

test.run();
