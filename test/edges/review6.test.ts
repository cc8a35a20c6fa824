// Adversarial review of the queue's perl hand-off, the advance that yields to a claiming
// supervisor, and the faster start-up (release at exit, the chain in the C locale).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually, gatedJob, lines, until, withHome } from '../helpers';

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

test.run();
