// Adversarial review of the queue's perl hand-off, the advance that yields to a claiming
// supervisor, and the faster start-up (release at exit, the chain in the C locale).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binPath, eventually, gatedJob, lines, until, withHome } from '../helpers';

/** The environment a job wrote with `env -0`, as a map. */
function envFile(path: string): Map<string, string> {
  const pairs = readFileSync(path, 'latin1').split('\0').filter(Boolean);
  return new Map(pairs.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]));
}

// every name supervisor.sh (or the job's shell before the command) assigns, and `_` (bash exports it)
const SUPERVISOR_NAMES = (
  'name id node entry tries delay max_delay retry_on queue slot seq restore home p f attempt gate lc pid status ' +
  'ms up _ go t qd me line spid limit st boot n_perl hand_sh hand_pl'
).split(' ');

test(
  "a job gets the caller's values of the names bgmon's supervisor uses, at its first attempt and a retried one",
  withHome(async (h) => {
    // sh exports an imported name with the last value it set: the supervisor's own values leaked
    const names = [...SUPERVISOR_NAMES, 'BGMON_RESTORE'];
    const own = Object.fromEntries(names.map((n) => [n, `caller's ${n}\nsecond 'line'`]));
    const out = join(h.subdir('out'), 'env');
    const script = 'if [ -e "$0" ]; then env -0 > "$0.2"; else env -0 > "$0"; exit 1; fi';
    const args = ['--name', 'e', '--retry', '1', '--retry-delay', '10ms', '--', 'sh', '-c', script, out];
    const r = await h.run('bgmon-start', args, { env: own });
    assert.is(r.code, 0, r.stderr);
    const rec = await until(h, 'e', 'SUCCEEDED');
    assert.is(rec.attempt, 2);
    for (const file of [out, `${out}.2`]) {
      const seen = envFile(file);
      const wrong = names.filter((n) => seen.get(n) !== own[n]).map((n) => `${n}=${seen.get(n)}`);
      assert.equal(wrong, [], file);
      assert.is(seen.get('BGMON_JOB_ID'), rec.id);
    }
    // the values travel in the supervisor's environment (private), not its argv (public), and a
    // caller without BGMON_RESTORE has none in its job
    const cmd = ['sh', '-c', 'env -0 > "$0"; sleep 30', out];
    const plain = await h.run('bgmon-start', ['--name', 'plain', '--', ...cmd], { env: { name: "caller's name" } });
    const sup = JSON.parse(plain.stdout).sup_pid;
    assert.not.match(readFileSync(`/proc/${sup}/cmdline`, 'latin1'), "caller's");
    await eventually(() => envFile(out).get('BGMON_JOB') === 'plain', 10_000, "plain's environment");
    assert.not.ok(envFile(out).has('BGMON_RESTORE'));
  }),
);

for (const [way, env] of [
  ['perl', {}],
  ['the shell', { BGMON_NO_PERL: '1' }],
] as const) {
  test(
    `a handed-off job, started by ${way}, gets PPID, IFS and OPTIND as /bin/sh exports them`,
    withHome(async (h) => {
      // sh sets PPID to its parent, IFS to space-tab-newline and OPTIND to 1 when it imports them
      const gate = join(h.dir, 'gate');
      await h.start('a', gatedJob(gate), ['--queue', 'q']);
      const own = { ...env, PPID: '1234567', IFS: 'x', OPTIND: '7' };
      const r = await h.run('bgmon-start', ['--name', 'b', '--queue', 'q', '--', 'env', '-0'], { env: own });
      assert.is(lines(r.stdout)[0]?.status, 'QUEUED', r.stderr);
      writeFileSync(gate, '');
      const b = await until(h, 'b', 'SUCCEEDED');
      const seen = envFile(b.log);
      assert.equal([seen.get('PPID'), seen.get('IFS'), seen.get('OPTIND')], [String(b.sup_pid), ' \t\n', '1']);
    }),
  );
}

for (const [way, env] of [
  ['perl', {}],
  ['the shell', { BGMON_NO_PERL: '1' }],
] as const) {
  test(
    `a handed-off job, started by ${way}, whose command's directory became a file or a link loop: 127, as sh`,
    withHome(async (h) => {
      const gate = join(h.dir, 'gate');
      await h.start('a', gatedJob(gate), ['--queue', 'x']);
      const [file, loop] = [h.subdir('file'), h.subdir('loop')];
      for (const [name, dir] of [
        ['c', file],
        ['d', loop],
      ]) {
        writeFileSync(join(dir, 'cmd'), '#!/bin/sh\necho ran\n', { mode: 0o755 });
        const r = await h.run('bgmon-start', ['--name', name, '--queue', 'x', '--', join(dir, 'cmd')], { env });
        assert.is(lines(r.stdout)[0]?.status, 'QUEUED', r.stderr);
      }
      // ENOTDIR and ELOOP: sh says 127, as for ENOENT (and ENAMETOOLONG)
      rmSync(file, { recursive: true });
      writeFileSync(file, '');
      rmSync(loop, { recursive: true });
      symlinkSync(loop, loop);
      writeFileSync(gate, '');
      const w = await h.run('bgmon-wait', ['c', 'd', '--timeout', '20s']);
      const [c, d] = [await h.status('c'), await h.status('d')];
      assert.equal([c.status, c.exit_code, d.status, d.exit_code], ['FAILED', 127, 'FAILED', 127], w.stdout);
      assert.match(readFileSync(c.log, 'utf8'), /exec: .*file\/cmd: not found\n$/);
      assert.match(readFileSync(d.log, 'utf8'), /exec: .*loop\/cmd: Too many levels of symbolic links\n$/);
    }),
  );
}

/** Whether this process may make a mount namespace of its own (root, or a user namespace allowed). */
const canUnshare = () => spawnSync('unshare', ['-m', 'true']).status === 0;

for (const [way, env] of [
  ['perl', {}],
  ['the shell', { BGMON_NO_PERL: '1' }],
] as const) {
  test(
    `a handed-off job, started by ${way}, of a caller without PATH: its command found where sh looks`,
    withHome(async (h) => {
      if (!canUnshare()) return; // a private /usr/local/bin needs a mount namespace
      // sh's default path has /usr/local/bin (bgmon-start's check too); execvp's only /bin:/usr/bin
      const local = h.subdir('local-bin');
      writeFileSync(join(local, 'bgmon-review6-probe'), '#!/bin/sh\necho found\n', { mode: 0o755 });
      const [start, wait] = [binPath('bgmon-start'), binPath('bgmon-wait')];
      const script = [
        'mount --make-rprivate / && mount --bind "$1" /usr/local/bin || exit 99',
        `"$2" "$3" --name a --queue q -- sh -c 'while [ ! -e "$0" ]; do sleep 0.05; done' "$4"`,
        'env -u PATH "$2" "$3" --name b --queue q -- bgmon-review6-probe',
        ': > "$4"',
        '"$2" "$5" b --timeout 20s',
      ].join(' && ');
      const gate = join(h.dir, 'gate');
      const args = ['-m', 'sh', '-c', script, 'sh', local, process.execPath, start, gate, wait];
      const r = await h.run('/usr/bin/unshare', args, { env });
      assert.is(r.code, 0, r.stdout + r.stderr);
      assert.is((await h.status('b')).exit_code, 0);
      assert.is(readFileSync(join(h.root, 'logs', 'b.log'), 'utf8'), 'found\n');
    }),
  );
}

test.run();
