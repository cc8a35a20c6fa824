// Resource faults: the state's file system fills up; a job floods its log.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { environHas, isSameProcess } from 'bgmon-state';
import {
  eventually,
  lines,
  listDir,
  processes,
  rssKb,
  slowTest,
  tmpfsUnavailable,
  untilOnDisk,
  withHome,
  withSmallDisk,
} from '../helpers';

const noTmpfs = tmpfsUnavailable();
const diskTest = noTmpfs === null ? test : test.skip;
const GIB = 1024 ** 3;

diskTest(
  `the file system holding the state fills up: the job's end is still recorded, status still works` +
    (noTmpfs ? ` (SKIPPED: cannot mount a tmpfs: ${noTmpfs})` : ''),
  withHome(async (h) => {
    await withSmallDisk(h, '512k', async (mnt, env) => {
      const start = await h.run(
        'bgmon-start',
        [
          '--name',
          'flood',
          '--',
          'sh',
          '-c',
          'head -c 2000000 /dev/zero | tr "\\0" x; echo; echo "exit of the writer: $?"; exit 4',
        ],
        { env },
      );
      assert.is(start.code, 0, start.stderr);
      const wait = await h.run('bgmon-wait', ['flood', '--timeout', '20s'], { env });
      assert.is(wait.code, 4, `the end is recorded despite ENOSPC: ${wait.stdout}${wait.stderr}`);
      const [rec] = lines(wait.stdout);
      assert.is(rec.status, 'FAILED');
      assert.is(rec.exit_code, 4);
      assert.ok(rec.ended_at);
      const jobs = join(mnt, 'home', 'jobs');
      assert.is(
        JSON.parse(readFileSync(join(jobs, 'flood.json'), 'utf8')).status,
        'FAILED',
        'folded into the record on disk',
      );
      assert.ok(
        statSync(rec.log).size < 2_000_000,
        `the writer hit a full disk (log: ${statSync(rec.log).size} bytes)`,
      );
      const status = await h.run('bgmon-status', ['--json'], { env });
      assert.is(status.code, 0);
      assert.is(lines(status.stdout)[0].status, 'FAILED');
      // A start needs free blocks (its end file and spare are reserved up front): on a full disk it
      // fails with one line and leaves nothing behind, rather than run a job whose end it could lose.
      const next = await h.run('bgmon-start', ['--name', 'next', '--', 'true'], { env });
      assert.is(next.code, 1, `${next.stdout}${next.stderr}`);
      assert.is(next.stdout, '');
      assert.match(next.stderr, /^bgmon-start: [^\n]*(ENOSPC|no space)[^\n]*\n$/i);
      assert.not.ok(existsSync(join(jobs, 'next.json')), 'no record');
      assert.equal(
        listDir(jobs).filter((f) => f.includes('next')),
        [],
        'no end or spare file',
      );
      const nextProcs = () =>
        processes((st) => environHas(st.pid, 'BGMON_JOB=next') && environHas(st.pid, `BGMON_HOME=${env.BGMON_HOME}`));
      await eventually(() => nextProcs().length === 0, 5000, 'no process of the failed start to be left');
    });
  }),
);

slowTest(
  "a job writing 1 GiB of output: bgmon's own processes stay under a few MB, no process copies the bytes",
  withHome(async (h) => {
    const go = join(h.dir, 'go');
    const rec = await h.start('gig', [
      'sh',
      '-c',
      `while [ ! -e ${go} ]; do sleep 0.05; done; head -c ${GIB} /dev/zero`,
    ]);
    // The job and its children are its session (it called setsid before bgmon-start printed its
    // pid). Not its BGMON_JOB_ID marker: /proc shows that only once the job has exec'd the command.
    const bgmonProcs = () => processes((st) => st.session !== rec.pid && environHas(st.pid, `BGMON_HOME=${h.root}`));
    let peakKb = 0;
    let samples = 0;
    const others = new Set<number>();
    /** One sample, kept only if the job still ran after it was taken: then the supervisor was the shell. */
    const sample = () => {
      const seen = bgmonProcs().map((st) => [st.pid, rssKb(st.pid)]);
      // by identity, not pid: a reused pid must not pass for the job (pid_max may be 32768)
      if (!isSameProcess(rec.pid, rec.starttime, rec.boot_id)) return;
      samples++;
      for (const [pid, kb] of seen) {
        if (pid === rec.sup_pid) peakKb = Math.max(peakKb, kb);
        else others.add(pid);
      }
    };
    sample();
    assert.is(samples, 1, 'sampled while the job waits to write');
    writeFileSync(go, '');
    await untilOnDisk(h, 'gig', (r) => (sample(), r.status !== 'RUNNING'), 120_000);
    assert.is(h.record('gig').status, 'SUCCEEDED');
    assert.is(statSync(rec.log).size, GIB, 'every byte in the log, written by the job itself');
    assert.ok(peakKb > 0 && peakKb < 4096, `supervisor peak RSS ${peakKb} kB over ${samples} samples`);
    assert.equal([...others], [], 'no other bgmon process was alive while the job ran');
  }),
);

test.run();
