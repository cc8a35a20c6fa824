// Runs the test files under uvu (through tsx), a few at a time: each file has its own
// BGMON_HOMEs, so files are independent. Prints one line per file and ends with the line CI
// reads: "N passed, N failed" (and ", N skipped"). Exits non-zero when anything failed.
//
//   node scripts/test.mjs [PATTERN] [--all] [--typecheck]
// PATTERN (a regular expression on the path under test/) picks files; --all also runs the tests
// marked slowTest (helpers.ts), which the default run reports as skipped. test/helpers.fails.ts
// must fail, test by test, as it says: it proves the helpers catch what they should.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const testDir = join(root, 'test');
const args = process.argv.slice(2);
const all = args.includes('--all');
const pattern = args.find((a) => !a.startsWith('--'));
// Files mostly wait (for jobs, sleeps, file events): 6 at a time fill 2 cores best for the default
// run (measured: 4 took 66 s, 6 took 60 s, 8 took 65 s). --all keeps 4: its long fault tests
// load the machine on their own, and CI must not trade margin on timing for speed.
const WORKERS = Number(process.env.BGMON_TEST_WORKERS) || (all ? 4 : 6);
const FILE_TIMEOUT_MS = 10 * 60_000;
const FAILS_FILE = 'helpers.fails.ts';
// How long each file took last time: the longest start first, so the workers end together.
const TIMES = join(root, 'node_modules', '.cache', 'bgmon-test-times.json');
// Every process the tests start inherits this mark (test files pass their environment on to
// bgmon, and bgmon to its jobs): what carries it after the files have ended was left behind.
const RUN_MARK = `BGMON_TEST_RUN=${process.pid}.${Date.now()}`;
const running = new Set();
// The run's temporary directories (test homes, small disks) live in one directory of its own
// (BGMON_TEST_TMP, see helpers.ts testTmp), removed at the end and on Ctrl-C, whatever was left.
const RUN_TMP = mkdtempSync(join(tmpdir(), 'bgmon-test-run-'));
// others may pass through, as through /tmp (the EPERM tests run a command as another user); each
// test's own directory inside is 0700
chmodSync(RUN_TMP, 0o755);

function readTimes() {
  try {
    return JSON.parse(readFileSync(TIMES, 'utf8'));
  } catch {
    return {};
  }
}

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

function pickFiles() {
  const chosen = walk(testDir)
    .map((f) => relative(testDir, f))
    .filter((f) => f.endsWith('.test.ts') || f === FAILS_FILE)
    .filter((f) => !pattern || new RegExp(pattern).test(f));
  const last = readTimes();
  // without a previous run, size stands in for time (1 s per 2 kB)
  const guess = (f) => last[f] ?? statSync(join(testDir, f)).size / 2000;
  return chosen.sort((a, b) => guess(b) - guess(a));
}

/** uvu's summary of one file ("Total: N", "Passed: N", "Skipped: N"); null when it printed none. */
function summary(output) {
  const count = (label) => Number((new RegExp(`^\\s*${label}:\\s+(\\d+)`, 'm').exec(output) ?? [])[1] ?? NaN);
  const total = count('Total');
  const passed = count('Passed');
  const skipped = count('Skipped');
  return [total, passed, skipped].some(Number.isNaN) ? null : { total, passed, skipped };
}

/** Runs node with argv and collects its output; it is SIGKILLed after FILE_TIMEOUT_MS. */
function runNode(argv, env = process.env) {
  const started = Date.now();
  const child = spawn(process.execPath, argv, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.on('close', () => running.delete(child));
  let output = '';
  child.stdout.on('data', (c) => (output += c));
  child.stderr.on('data', (c) => (output += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), FILE_TIMEOUT_MS);
  return new Promise((done) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, output, seconds: (Date.now() - started) / 1000 });
    }),
  );
}

/**
 * Runs test files under uvu: one file alone, or several in one process as uvu's own CLI does
 * (the default run: a process and tsx's start-up, ~0.3 s of CPU, per group rather than per file).
 */
function runFiles(group) {
  const suites = group.map((f) => ({ name: f, file: join(testDir, f) }));
  const argv =
    group.length === 1
      ? ['--import', 'tsx', suites[0].file]
      : ['--import', 'tsx', '-e', `require('uvu/run').run(${JSON.stringify(suites)})`];
  const [markKey, markValue] = RUN_MARK.split('=');
  const env = { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1', [markKey]: markValue, BGMON_TEST_TMP: RUN_TMP };
  return runNode(argv, all ? { ...env, BGMON_TEST_ALL: '1' } : env);
}

/** The processes carrying this run's mark, with their command lines. */
function marked() {
  const found = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (!readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(RUN_MARK)) continue;
      found.push({ pid: Number(pid), cmd: readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0/g, ' ').trim() });
    } catch {} // gone, or not ours to read
  }
  return found;
}

/**
 * Ends, by pid, every process of this run that outlived the test files: a file killed at its
 * timeout, or crashed, never reached its cleanup. Returns what it found (a passing file that leaves
 * a process behind is a defect of its own).
 */
function sweep() {
  const left = [];
  for (let round = 0; round < 5; round++) {
    const found = marked();
    if (found.length === 0) break;
    for (const p of found) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {}
    }
    left.push(...found);
  }
  return left;
}

/** Removes the run's temporary directory, unmounting first what a test mounted in it (a small disk). */
function removeRunTmp() {
  try {
    const mounts = readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[1]);
    for (const m of mounts.filter((m) => m?.startsWith(`${RUN_TMP}/`)).reverse()) {
      try {
        execFileSync('umount', ['-l', m], { stdio: 'ignore' });
      } catch {}
    }
    rmSync(RUN_TMP, { recursive: true, force: true });
  } catch {} // what cannot be removed stays in the system's temp directory
}

// Ctrl-C (or a CI timeout) ends the files and whatever they had started, not only this runner.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    for (const child of running) child.kill('SIGKILL');
    const left = sweep();
    removeRunTmp();
    console.log(`interrupted (${signal}): the test files and ${left.length} process(es) they had started were ended`);
    process.exit(130);
  });
}

/** Counts for a normal test file: a crash or a non-zero exit without a failed test is one failure. */
function judgeTests(run) {
  const s = summary(run.output);
  if (!s) return { passed: 0, failed: 1, skipped: 0, note: `no uvu summary (exit ${run.code ?? run.signal})` };
  const failed = s.total - s.passed; // uvu's Total counts the tests that ran: skipped ones are apart
  return { passed: s.passed, failed: failed || (run.code === 0 ? 0 : 1), skipped: s.skipped, note: '' };
}

/**
 * helpers.fails.ts passes only by failing: every test in it fails, their number is the one its
 * header states ("// expected failures: N"), and each "// expect: TEXT" line appears in the output.
 */
function judgeFails(run) {
  const text = readFileSync(join(testDir, FAILS_FILE), 'utf8');
  const expected = Number((/^\/\/ expected failures: (\d+)$/m.exec(text) ?? [])[1]);
  const wanted = [...text.matchAll(/^\/\/ expect: (.+)$/gm)].map((m) => m[1]);
  const s = summary(run.output);
  const problems = [];
  if (!s) problems.push(`no uvu summary (exit ${run.code ?? run.signal})`);
  else if (s.total !== expected || s.passed !== 0 || s.skipped !== 0)
    problems.push(`${s.total - s.passed} of ${s.total} failed, ${expected} should`);
  if (run.code === 0) problems.push('it exited 0');
  for (const w of wanted) if (!run.output.includes(w)) problems.push(`no failure saying "${w}"`);
  if (problems.length > 0)
    return {
      passed: 0,
      failed: 1,
      skipped: 0,
      note: `the helpers did not fail as they should: ${problems.join('; ')}`,
    };
  return { passed: 1, failed: 0, skipped: 0, note: `${expected} tests failed as they should` };
}

/** Files dealt into n groups of about equal time (the longest first, each to the lightest group). */
function groupsOf(files, n) {
  const last = readTimes();
  const groups = Array.from({ length: Math.min(n, files.length) }, () => ({ files: [], time: 0 }));
  for (const f of files) {
    const lightest = groups.reduce((a, b) => (b.time < a.time ? b : a));
    lightest.files.push(f);
    lightest.time += last[f] ?? 5;
  }
  return groups.map((g) => g.files).filter((g) => g.length > 0);
}

/**
 * --typecheck: tsc runs beside the test files, not before them (~4 s of CPU that the tests, which
 * mostly wait, leave room for); a type error is one failure, printed with tsc's output.
 */
function typecheck() {
  if (!args.includes('--typecheck')) return Promise.resolve(null);
  // incremental: a run after a small change re-checks what changed (~1 s of CPU, not ~4 s)
  const info = join(root, 'node_modules', '.cache', 'bgmon-tsc.tsbuildinfo');
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  return runNode([tsc, '-p', join(root, 'tsconfig.json'), '--incremental', '--tsBuildInfoFile', info]);
}

async function main() {
  const files = pickFiles();
  if (files.length === 0) {
    console.log(`no test file matches ${pattern}`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
  const typechecked = typecheck();
  const totals = { passed: 0, failed: 0, skipped: 0 };
  const times = {};
  const started = Date.now();
  // --all: a process per file (each file's time is kept for scheduling); else the files dealt
  // into WORKERS processes. helpers.fails.ts always runs alone: it is judged apart.
  const batches = all
    ? files.map((f) => [f])
    : [
        ...files.filter((f) => f === FAILS_FILE).map((f) => [f]),
        ...groupsOf(
          files.filter((f) => f !== FAILS_FILE),
          WORKERS,
        ),
      ];
  const worker = async () => {
    for (let group = batches.shift(); group !== undefined; group = batches.shift()) {
      const run = await runFiles(group);
      const label = group.length === 1 ? group[0] : `${group.length} files: ${group.join(' ')}`;
      if (group.length === 1) times[label] = run.seconds;
      const r = label === FAILS_FILE ? judgeFails(run) : judgeTests(run);
      for (const k of Object.keys(totals)) totals[k] += r[k];
      const mark = r.failed > 0 ? 'FAIL' : 'ok  ';
      const counts = `${r.passed} passed, ${r.failed} failed${r.skipped ? `, ${r.skipped} skipped` : ''}`;
      const seconds = `${run.seconds.toFixed(1).padStart(6)} s`;
      console.log(`${mark} ${label.padEnd(40)} ${counts.padEnd(34)} ${seconds}${r.note ? `  ${r.note}` : ''}`);
      // the whole output when something failed or was skipped (uvu names the test and why)
      if (label !== FAILS_FILE && (r.failed > 0 || r.skipped > 0)) console.log(run.output.replace(/^/gm, '    | '));
    }
  };
  await Promise.all(Array.from({ length: Math.min(WORKERS, files.length) }, worker));
  const left = sweep();
  if (left.length > 0) {
    totals.failed += 1;
    console.log(`FAIL ${left.length} process(es) outlived the test files that started them (now killed):`);
    for (const p of left) console.log(`    | ${p.pid} ${p.cmd.slice(0, 160)}`);
  }
  removeRunTmp();
  const tsc = await typechecked;
  if (tsc) console.log(`${tsc.code === 0 ? 'ok  ' : 'FAIL'} typecheck (tsc -p tsconfig.json)`);
  if (tsc && tsc.code !== 0) {
    totals.failed += 1;
    console.log(tsc.output.replace(/^/gm, '    | '));
  }
  try {
    mkdirSync(dirname(TIMES), { recursive: true });
    writeFileSync(TIMES, JSON.stringify({ ...readTimes(), ...times }));
  } catch {} // only a scheduling hint
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(
    `${files.length} files in ${seconds} s, ${WORKERS} at a ` +
      `time${all ? ', slow tests included' : '; slow tests skipped (pnpm test:all)'}`,
  );
  console.log(`${totals.passed} passed, ${totals.failed} failed${totals.skipped ? `, ${totals.skipped} skipped` : ''}`);
  process.exit(totals.failed > 0 ? 1 : 0);
}

main();
