// pnpm bench [--quick]: bgmon measured against baselines taken in the same run, as ratios.
// Prints a markdown table and writes bench/results.json (bench/results-partial.json for --quick or
// --only). Not a test: nothing depends on it.
// Every process it starts is ended by pid (or by its tool's own shutdown) in `finally`.
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const quick = process.argv.includes('--quick');
const RUNS = quick ? 5 : 15;
// start-up times vary by ±15 ms here: more pairs for the cases compared with node -e 0 (a median
// of 31 still moved by ±1.5 ms from run to run, a tenth of what bgmon-start adds to node -e 0)
const WALL_RUNS = quick ? 9 : 51;
const RECORDS = quick ? 2000 : 10_000;
const MEM_JOBS = quick ? 20 : 100;
const BIG_LOG = quick ? 128 * 2 ** 20 : 2 ** 30;
const BIG_OUT = quick ? 128 * 2 ** 20 : 2 ** 30;
const OUT_RUNS = quick ? 3 : 15;
const JOB_SLEEP = '3617'; // a duration nothing else uses, to tell the jobs apart from the tools
const node = process.execPath;
const bin = (name) => join(root, 'packages', name, 'bin', name);
const temps = [];
const cleanups = [];

function tempDir(tag) {
  const dir = mkdtempSync(join(tmpdir(), `bgmon-bench-${tag}-`));
  temps.push(dir);
  return dir;
}
const homeEnv = (home) => ({ ...process.env, BGMON_HOME: home });
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function timeSync(cmd, args, opts = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], ...opts });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}
const bg = (args, home, opts = {}) => spawnSync(node, args, { env: homeEnv(home), encoding: 'utf8', ...opts });

/** Interleaves baseline and subject runs (after warm-ups) so drift hits both alike. */
function paired(baseline, subject, runs = WALL_RUNS) {
  for (let i = 0; i < 3; i++) {
    baseline();
    subject();
  }
  const b = [],
    s = [];
  for (let i = 0; i < runs; i++) {
    b.push(baseline());
    s.push(subject());
  }
  return { bgmon: median(s), baseline: median(b) };
}

const rows = [];
function row(what, bgmon, baseline, baselineName, target, unit = 'ms') {
  const ratio = baseline ? bgmon / baseline : null;
  const limit = Number(target.replace(/[^0-9.]/g, ''));
  const measured = target.includes('×') ? ratio : bgmon;
  const ok = target === 'report' ? null : measured !== null && measured <= limit;
  rows.push({
    what,
    bgmon: round(bgmon),
    baseline: baseline === null ? null : round(baseline),
    baseline_is: baselineName,
    unit,
    ratio: ratio === null ? null : round(ratio, 2),
    target,
    ok,
  });
  console.error(`  ${what}: ${round(bgmon)} ${unit}${baseline ? ` vs ${round(baseline)} (${round(ratio, 2)}×)` : ''}`);
}
const round = (x, d = 1) => (x === null || x === undefined ? null : Math.round(x * 10 ** d) / 10 ** d);

// ---------- helpers for finding and ending what tools leave behind ----------
const listPids = () =>
  readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number);
function cmdline(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').filter(Boolean);
  } catch {
    return null;
  }
}
function rssKb(pid) {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}
const isJob = (argv) => argv?.[0].endsWith('sleep') && argv[1] === JOB_SLEEP;
function killPids(pids) {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
}
/** The processes (not this one) whose environment holds `entry`, e.g. NQDIR=<our dir>. */
function pidsCarrying(entry) {
  const needle = Buffer.from(entry + '\0');
  const inner = Buffer.concat([Buffer.from('\0'), needle]);
  return listPids().filter((pid) => {
    if (pid === process.pid) return false;
    try {
      const env = readFileSync(`/proc/${pid}/environ`);
      return env.indexOf(needle) === 0 || env.indexOf(inner) >= 0;
    } catch {
      return false;
    }
  });
}
/** Kills, by pid, every process whose environment holds `entry`, until none is left. */
async function killByEnv(entry) {
  for (let round = 0; round < 20; round++) {
    const ours = pidsCarrying(entry);
    if (ours.length === 0) return;
    killPids(ours);
    await sleep(50);
  }
}
/** Everything new since `before`: [jobs, the tool's own processes]. */
function newProcesses(before) {
  const jobs = [],
    tools = [];
  for (const pid of listPids()) {
    if (before.has(pid) || pid === process.pid) continue;
    const argv = cmdline(pid);
    if (!argv || argv.length === 0) continue;
    (isJob(argv) ? jobs : tools).push(pid);
  }
  return { jobs, tools };
}
/** Waits (at most 5 s) until no process carries BGMON_HOME=<home>: its jobs and supervisors are done. */
function untilQuiet(home) {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && pidsCarrying(`BGMON_HOME=${home}`).length > 0)
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
}

/**
 * Waits (up to a minute) until the disk under the temp directory has had no request in flight
 * for half a second, by its io_ticks in /sys/dev/block/MAJ:MIN/stat: `sync` returns once dirty
 * data is written, but the device may still be busy (discards of the gigabyte files deleted
 * before, on a disk mounted with -o discard), and a side timed then waits on every file it
 * makes. Returns how long it waited (ms); 0 when the device cannot be read.
 */
function untilDiskQuiet() {
  const dev = statSync(tmpdir()).dev;
  const major = (dev >> 8) & 0xfff;
  const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
  const file = `/sys/dev/block/${major}:${minor}/stat`;
  const busy = () => {
    const f = readFileSync(file, 'latin1').trim().split(/\s+/).map(Number);
    return { inFlight: f[8], ioTicks: f[9] };
  };
  if (!existsSync(file)) return 0;
  const t0 = Date.now();
  let last = busy();
  let quietSince = Date.now();
  while (Date.now() - t0 < 60_000) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    const now = busy();
    if (now.inFlight !== 0 || now.ioTicks !== last.ioTicks) quietSince = Date.now();
    else if (Date.now() - quietSince >= 500) break;
    last = now;
  }
  return Date.now() - t0;
}

function killBgmonHome(home) {
  const jobsDir = join(home, 'jobs');
  if (!existsSync(jobsDir)) return;
  for (const f of readdirSync(jobsDir)) {
    if (!f.endsWith('.json') || f.startsWith('.')) continue;
    try {
      const r = JSON.parse(readFileSync(join(jobsDir, f), 'utf8'));
      if (r.status === 'RUNNING' && r.pid) {
        try {
          process.kill(-r.pid, 'SIGKILL');
        } catch {}
      }
      if (r.sup_pid) killPids([r.sup_pid]);
    } catch {}
  }
}

async function waitUntil(fn, ms = 20_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fn()) return true;
    await sleep(20);
  }
  return false;
}

// ---------- cases ----------
async function commandWallTimes() {
  const nodeFloor = () => timeSync(node, ['-e', '0']);
  const startHome = join(tempDir('start'), 'home');
  cleanups.push(() => killBgmonHome(startHome));
  // each job ends at once and its supervisor then folds it (a Node start-up), after bgmon-start has
  // returned: waited for, untimed, so that it never runs into the next measured run
  const started = () => {
    const ms = timeSync(node, [bin('bgmon-start'), '--', 'true'], { env: homeEnv(startHome) });
    untilQuiet(startHome);
    return ms;
  };
  let r = paired(nodeFloor, started);
  row('bgmon-start of `true`: wall time', r.bgmon, r.baseline, 'node -e 0', '≤ 1.3×');

  const emptyHome = join(tempDir('status'), 'home');
  r = paired(nodeFloor, () => timeSync(node, [bin('bgmon-status')], { env: homeEnv(emptyHome) }));
  row('bgmon-status (empty home): wall time', r.bgmon, r.baseline, 'node -e 0', '≤ 1.3×');

  const home = join(tempDir('finished'), 'home');
  cleanups.push(() => killBgmonHome(home));
  bg([bin('bgmon-start'), '--name', 'done', '--', 'sh', '-c', 'seq 1 1000'], home);
  bg([bin('bgmon-wait'), 'done'], home);
  r = paired(nodeFloor, () => timeSync(node, [bin('bgmon-stop'), 'done'], { env: homeEnv(home) }));
  row('bgmon-stop of a finished job: wall time', r.bgmon, r.baseline, 'node -e 0', '≤ 1.3×');
  r = paired(nodeFloor, () => timeSync(node, [bin('bgmon-tail'), '-n', '10', 'done'], { env: homeEnv(home) }));
  row('bgmon-tail -n 10: wall time', r.bgmon, r.baseline, 'node -e 0', '≤ 1.3×');
  r = paired(nodeFloor, () => timeSync(node, [bin('bgmon-wait'), 'done'], { env: homeEnv(home) }));
  row('bgmon-wait of a finished job: wall time', r.bgmon, r.baseline, 'node -e 0', '≤ 1.3×');
}

/** A home with `n` finished records copied from a real one, and with `history` past runs of each. */
function homeOfRecords(tag, n, history = 0) {
  const home = join(tempDir(tag), 'home');
  bg([bin('bgmon-start'), '--name', 'template', '--', 'true'], home);
  bg([bin('bgmon-wait'), 'template'], home);
  const template = JSON.parse(readFileSync(join(home, 'jobs', 'template.json'), 'utf8'));
  if (history > 0) mkdirSync(join(home, 'history'), { recursive: true, mode: 0o700 });
  for (let i = 0; i < n; i++) {
    const name = `job-${String(i).padStart(5, '0')}`;
    const rec = (id) => ({ ...template, name, id, log: join(home, 'logs', `${name}.log`) });
    const write = (path, r) => writeFileSync(path, JSON.stringify(r) + '\n', { mode: 0o600 });
    write(join(home, 'jobs', `${name}.json`), rec(`${template.id}-${i}`));
    for (let k = 0; k < history; k++) {
      const id = `${template.id}-${i}-past${k}`;
      write(join(home, 'history', `${name}@${id}.json`), rec(id));
    }
  }
  return home;
}

/**
 * bgmon-status --json over a home's records, paired with node -e 0. The records are settled
 * first, as finished records are: over a second old (the records cache copies no file changed
 * more recently) and listed once (which writes the cache).
 */
async function statusRow(home, what) {
  const status = () => timeSync(node, [bin('bgmon-status'), '--json'], { env: homeEnv(home) });
  await sleep(1100);
  status();
  const r = paired(() => timeSync(node, ['-e', '0']), status);
  row(what, r.bgmon, r.baseline, 'node -e 0', '≤ 4×');
  return status;
}

async function statusOverManyRecords() {
  const home = homeOfRecords('records', RECORDS);
  const status = await statusRow(home, `bgmon-status --json over ${RECORDS} finished records`);
  // the first listing after the cache is gone: every file is read, and the cache written again
  const cache = join(home, 'run', 'records.cache');
  const r = paired(
    () => timeSync(node, ['-e', '0']),
    () => {
      rmSync(cache, { force: true });
      return status();
    },
  );
  row(
    '  the same with no records cache yet (every file read, the cache written)',
    r.bgmon,
    r.baseline,
    'node -e 0',
    'report',
  );
}

async function statusBesideHistory() {
  // issue 11: past runs are kept in history/, and not read unless --history asks for them
  const home = homeOfRecords('history', RECORDS, 1);
  await statusRow(home, `bgmon-status --json over ${RECORDS} records plus ${RECORDS} history records`);
}

async function memoryPerJob() {
  const results = {};
  // expectJobs: how many jobs run at once under the tool (nq runs one; the rest wait queued)
  const measure = async (tool, marker, startAll, stopAll, expectJobs = MEM_JOBS) => {
    const before = new Set(listPids());
    let found = { jobs: [], tools: [] };
    try {
      await startAll();
      await waitUntil(
        () =>
          (found = newProcesses(before)).jobs.length >= expectJobs &&
          found.jobs.length + found.tools.length >= MEM_JOBS,
        60_000,
      );
      await sleep(300);
      found = newProcesses(before);
      const kb = found.tools.reduce((sum, pid) => sum + rssKb(pid), 0);
      results[tool] = { perJobMb: kb / 1024 / MEM_JOBS, jobs: found.jobs.length, toolProcesses: found.tools.length };
    } finally {
      await stopAll();
      await killByEnv(marker);
    }
  };
  const home = join(tempDir('mem'), 'home');
  cleanups.push(() => killBgmonHome(home));
  await measure(
    'bgmon',
    `BGMON_HOME=${home}`,
    async () => {
      for (let i = 0; i < MEM_JOBS; i++) bg([bin('bgmon-start'), '--name', `m${i}`, '--', 'sleep', JOB_SLEEP], home);
    },
    async () => killBgmonHome(home),
  );
  row(
    `memory kept per running job (${MEM_JOBS} sleep jobs, RSS of non-job processes / ${MEM_JOBS})`,
    results.bgmon.perJobMb,
    null,
    '',
    '≤ 2 MB',
    'MB',
  );
  const retryHome = join(tempDir('mem-retry'), 'home');
  cleanups.push(() => killBgmonHome(retryHome));
  const withRetry = ['--retry', '3', '--retry-delay', '1s', '--on-end', 'true'];
  await measure(
    'bgmon-retry',
    `BGMON_HOME=${retryHome}`,
    async () => {
      for (let i = 0; i < MEM_JOBS; i++)
        bg([bin('bgmon-start'), '--name', `r${i}`, ...withRetry, '--', 'sleep', JOB_SLEEP], retryHome);
    },
    async () => killBgmonHome(retryHome),
  );
  row(`  the same with --retry 3 --on-end (issue 11)`, results['bgmon-retry'].perJobMb, null, '', '≤ 2 MB', 'MB');

  if (spawnSync('sh', ['-c', 'command -v nq']).status === 0) {
    const nqdir = tempDir('nq');
    await measure(
      'nq',
      `NQDIR=${nqdir}`,
      async () => {
        for (let i = 0; i < MEM_JOBS; i++)
          spawnSync('nq', ['sleep', JOB_SLEEP], { env: { ...process.env, NQDIR: nqdir }, stdio: 'ignore' });
      },
      async () => {},
      1,
    );
    row(
      `  peer: nq, same ${MEM_JOBS} jobs (nq runs them one at a time; the others wait as nq processes)`,
      results.nq.perJobMb,
      null,
      '',
      'report',
      'MB',
    );
  } else rows.push({ what: 'peer nq', note: 'skipped: not installed (apt-get install nq)' });
  const tspBin = ['tsp', 'ts'].find(
    (b) => spawnSync('sh', ['-c', `command -v ${b} && ${b} -h 2>&1 | grep -qi spooler`]).status === 0,
  );
  if (tspBin) {
    const sock = join(tempDir('tsp'), 'socket');
    const env = { ...process.env, TS_SOCKET: sock, TS_MAXFINISHED: '1000', TMPDIR: dirname(sock) };
    await measure(
      'task-spooler',
      `TS_SOCKET=${sock}`,
      async () => {
        spawnSync(tspBin, ['-S', String(MEM_JOBS)], { env, stdio: 'ignore' });
        for (let i = 0; i < MEM_JOBS; i++) spawnSync(tspBin, ['sleep', JOB_SLEEP], { env, stdio: 'ignore' });
      },
      async () => {
        spawnSync(tspBin, ['-K'], { env, stdio: 'ignore' });
      },
    );
    row(
      `  peer: task-spooler, same ${MEM_JOBS} jobs (-S ${MEM_JOBS} slots, one server)`,
      results['task-spooler'].perJobMb,
      null,
      '',
      'report',
      'MB',
    );
  } else rows.push({ what: 'peer task-spooler', note: 'skipped: not installed (apt-get install task-spooler)' });
  return results;
}

async function waitLatency() {
  const home = join(tempDir('waitlat'), 'home');
  cleanups.push(() => killBgmonHome(home));
  const samples = [];
  for (let i = 0; i < RUNS; i++) {
    const stamp = join(home, `..`, `stamp${i}`);
    bg([bin('bgmon-start'), '--name', `w${i}`, '--', 'sh', '-c', `sleep 0.6; date +%s%3N > ${stamp}`], home);
    const ended = await new Promise((resolve) => {
      const w = spawn(node, [bin('bgmon-wait'), `w${i}`], { env: homeEnv(home), stdio: 'ignore' });
      w.on('exit', () => resolve(Date.now()));
    });
    samples.push(ended - Number(readFileSync(stamp, 'utf8')));
  }
  row('bgmon-wait latency: job end → wait exits', median(samples), null, '', '≤ 50 ms');
}

async function untilLatency() {
  // The job stamps the time, prints its ready line and keeps running; bgmon-wait --until exits on it.
  const home = join(tempDir('until'), 'home');
  cleanups.push(() => killBgmonHome(home));
  const samples = [];
  for (let i = 0; i < RUNS; i++) {
    const stamp = join(home, '..', `stamp${i}`);
    const script = `sleep 0.6; date +%s%3N > ${stamp}; echo "listening on :80$i"; exec sleep 60`;
    bg([bin('bgmon-start'), '--name', `u${i}`, '--', 'sh', '-c', script], home);
    const matched = await new Promise((resolve) => {
      const w = spawn(node, [bin('bgmon-wait'), '--until', 'listening on', `u${i}`], {
        env: homeEnv(home),
        stdio: 'ignore',
      });
      w.on('exit', (code) => resolve(code === 0 ? Date.now() : null));
    });
    if (matched === null) throw new Error(`bgmon-wait --until u${i} did not match`);
    samples.push(matched - Number(readFileSync(stamp, 'utf8')));
    bg([bin('bgmon-stop'), '--grace', '1s', `u${i}`], home);
  }
  row('bgmon-wait --until latency: line written → wait exits', median(samples), null, '', '≤ 50 ms');
}

async function followLatency() {
  // The job stamps the time and exits; its supervisor writes the end file; the follower prints "ended".
  const home = join(tempDir('follow'), 'home');
  cleanups.push(() => killBgmonHome(home));
  bg([bin('bgmon-start'), '--name', 'first', '--', 'true'], home);
  const f = spawn(node, [bin('bgmon-status'), '--follow'], { env: homeEnv(home), stdio: ['ignore', 'pipe', 'ignore'] });
  cleanups.push(() => f.kill('SIGKILL'));
  const ended = new Map();
  let buf = '';
  f.stdout.on('data', (c) => {
    const now = Date.now();
    buf += c;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const ev = JSON.parse(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      if (ev.event === 'ended') ended.set(ev.name, now);
    }
  });
  const samples = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      const stamp = join(home, '..', `stamp${i}`);
      bg([bin('bgmon-start'), '--name', `f${i}`, '--', 'sh', '-c', `sleep 0.3; date +%s%3N > ${stamp}`], home);
      if (!(await waitUntil(() => ended.has(`f${i}`)))) throw new Error(`no ended line for f${i}`);
      samples.push(ended.get(`f${i}`) - Number(readFileSync(stamp, 'utf8')));
    }
  } finally {
    f.kill('SIGTERM');
  }
  row('bgmon-status --follow latency: job end → "ended" line', median(samples), null, '', '≤ 50 ms');
}

async function resourcesOverJobs() {
  const home = join(tempDir('resources'), 'home');
  cleanups.push(() => killBgmonHome(home));
  try {
    for (let i = 0; i < MEM_JOBS; i++) bg([bin('bgmon-start'), '--name', `r${i}`, '--', 'sleep', JOB_SLEEP], home);
    const plain = () => timeSync(node, [bin('bgmon-status'), '--json'], { env: homeEnv(home) });
    const r = paired(plain, () =>
      timeSync(node, [bin('bgmon-status'), '--json', '--resources'], { env: homeEnv(home) }),
    );
    row(
      `bgmon-status --resources over ${MEM_JOBS} running jobs`,
      r.bgmon,
      r.baseline,
      'same without --resources',
      '≤ 1.5×',
    );
  } finally {
    killBgmonHome(home);
  }
}

async function tailOnHugeLog() {
  const home = join(tempDir('tailbig'), 'home');
  bg([bin('bgmon-start'), '--name', 'small', '--', 'sh', '-c', 'seq 1 200'], home);
  bg([bin('bgmon-start'), '--name', 'big', '--', 'true'], home);
  bg([bin('bgmon-wait'), 'small', 'big'], home);
  const line = Buffer.from(
    '2026-11-28T00:00:00Z INFO step=123456 loss=0.123456 lr=0.0001 a typical log line of a long job\n',
  );
  const chunk = Buffer.concat(Array(Math.ceil(2 ** 20 / line.length)).fill(line));
  const fd = openSync(join(home, 'logs', 'big.log'), 'w');
  for (let written = 0; written < BIG_LOG; written += chunk.length) writeSync(fd, chunk);
  closeSync(fd);
  const r = paired(
    () => timeSync(node, [bin('bgmon-tail'), '-n', '10', 'small'], { env: homeEnv(home) }),
    () => timeSync(node, [bin('bgmon-tail'), '-n', '10', 'big'], { env: homeEnv(home) }),
  );
  row(`bgmon-tail -n 10 on a ${BIG_LOG / 2 ** 20} MiB log`, r.bgmon, r.baseline, 'same on a 1 KiB log', '≤ 1.2×');
  rmSync(join(home, 'logs', 'big.log'));
}

async function tailSinceOnHugeLog() {
  // An incremental read (what an agent polling a log does): the last 1 KiB of a 1 GiB log,
  // reached through a cursor, against `tail -n 10` of a whole 1 KiB log.
  const home = join(tempDir('tailsince'), 'home');
  bg([bin('bgmon-start'), '--name', 'small', '--', 'true'], home);
  bg([bin('bgmon-start'), '--name', 'big', '--', 'true'], home);
  bg([bin('bgmon-wait'), 'small', 'big'], home);
  const line = Buffer.from(
    '2026-11-28T00:00:00Z INFO step=123456 loss=0.123456 lr=0.0001 a typical log line of a long job\n',
  );
  const chunk = Buffer.concat(Array(Math.ceil(2 ** 20 / line.length)).fill(line));
  writeFileSync(join(home, 'logs', 'small.log'), chunk.subarray(0, 1024));
  const fd = openSync(join(home, 'logs', 'big.log'), 'w');
  let size = 0;
  while (size < BIG_LOG) size += writeSync(fd, chunk);
  closeSync(fd);
  const id = JSON.parse(readFileSync(join(home, 'jobs', 'big.json'), 'utf8')).id;
  const cursor = `${id}:${size - 1024}`;
  const r = paired(
    () => timeSync(node, [bin('bgmon-tail'), '-n', '10', 'small'], { env: homeEnv(home) }),
    () => timeSync(node, [bin('bgmon-tail'), '--json', '--since', cursor, 'big'], { env: homeEnv(home) }),
  );
  row(
    `bgmon-tail --json --since: last 1 KiB of a ${BIG_LOG / 2 ** 20} MiB log`,
    r.bgmon,
    r.baseline,
    'tail -n 10 of a 1 KiB log',
    '≤ 1.2×',
  );
  rmSync(join(home, 'logs', 'big.log'));
}

async function tailFollowLatency() {
  const home = join(tempDir('tailf'), 'home');
  cleanups.push(() => killBgmonHome(home));
  const n = RUNS;
  bg(
    [
      bin('bgmon-start'),
      '--name',
      'ticker',
      '--',
      'sh',
      '-c',
      `sleep 1; for i in $(seq 1 ${n}); do date +%s%3N; sleep 0.1; done`,
    ],
    home,
  );
  const samples = [];
  await new Promise((resolve) => {
    const t = spawn(node, [bin('bgmon-tail'), '-f', '-n', '0', 'ticker'], {
      env: homeEnv(home),
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let buf = '';
    t.stdout.on('data', (c) => {
      const now = Date.now();
      buf += c;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        samples.push(now - Number(buf.slice(0, nl)));
        buf = buf.slice(nl + 1);
      }
    });
    t.on('exit', resolve);
  });
  row('bgmon-tail -f: line written → line printed', median(samples), null, '', '≤ 50 ms');
}

async function bigOutput() {
  // Both sides write into RAM (/dev/shm) when there is room: disk writeback from earlier cases
  // otherwise swamps a difference of a few milliseconds.
  const shm =
    existsSync('/dev/shm') &&
    spawnSync('sh', ['-c', `[ $(df -k --output=avail /dev/shm | tail -1) -gt ${(3 * BIG_OUT) / 1024} ]`]).status === 0;
  const scratch = (tag) => {
    const d = mkdtempSync(join(shm ? '/dev/shm' : tmpdir(), `bgmon-bench-${tag}-`));
    temps.push(d);
    return d;
  };
  const home = join(scratch('bigout'), 'home');
  cleanups.push(() => killBgmonHome(home));
  const dir = scratch('bigout-base');
  const count = BIG_OUT / 2 ** 20;
  // The job times its own writing (the same script on both sides), so what differs is only
  // where stdout goes: a file opened by the shell, or the log under bgmon.
  const stamp = join(dir, 'stamp');
  const script =
    `s=$(date +%s%N); dd if=/dev/zero bs=1M count=${count} status=none; e=$(date +%s%N); ` +
    `echo $(( (e - s) / 1000 )) > ${stamp}`;
  const writeMs = () => Number(readFileSync(stamp, 'utf8')) / 1000;
  const base = [],
    sub = [];
  const baseline = () => {
    spawnSync('sync');
    spawnSync('sh', ['-c', `(${script}) > ${dir}/out`]);
    base.push(writeMs());
    rmSync(join(dir, 'out'));
  };
  const underBgmon = () => {
    spawnSync('sync');
    bg([bin('bgmon-start'), '--name', 'out', '--', 'sh', '-c', script], home);
    // poll the record rather than start a bgmon-wait: its start-up would compete with the job
    const cell = new Int32Array(new SharedArrayBuffer(4));
    while (JSON.parse(readFileSync(join(home, 'jobs', 'out.json'), 'utf8')).status === 'RUNNING')
      Atomics.wait(cell, 0, 0, 20);
    sub.push(writeMs());
    bg([bin('bgmon-rm'), 'out'], home);
  };
  // a warm-up of each: the first touch of fresh memory is slow on a VM
  baseline();
  underBgmon();
  base.length = 0;
  sub.length = 0;
  for (let i = 0; i < OUT_RUNS; i++) {
    // alternate the order, so neither side always runs right after the other
    if (i % 2) {
      underBgmon();
      baseline();
    } else {
      baseline();
      underBgmon();
    }
  }
  row(
    `a job writing ${count} MiB to stdout (its own timing of the writes)${shm ? ', in /dev/shm' : ''}`,
    median(sub),
    median(base),
    'same command with > file',
    '≤ 1.05×',
  );
}

async function versusPm2() {
  if (spawnSync('sh', ['-c', 'command -v pm2']).status !== 0) {
    rows.push({ what: 'peer pm2', note: 'skipped: not installed (npm install -g pm2)' });
    return;
  }
  const pm2Home = tempDir('pm2');
  const env = { ...process.env, PM2_HOME: pm2Home };
  const home = join(tempDir('pm2-bgmon'), 'home');
  cleanups.push(() => killBgmonHome(home));
  try {
    const apps = Array.from({ length: 10 }, (_, i) => ({
      name: `s${i}`,
      script: 'sleep',
      args: JOB_SLEEP,
      interpreter: 'none',
      autorestart: false,
    }));
    writeFileSync(join(pm2Home, 'apps.json'), JSON.stringify({ apps }));
    spawnSync('pm2', ['start', join(pm2Home, 'apps.json')], { env, stdio: 'ignore' });
    for (let i = 0; i < 10; i++) bg([bin('bgmon-start'), '--name', `s${i}`, '--', 'sleep', JOB_SLEEP], home);
    const r = paired(
      () => timeSync('pm2', ['jlist'], { env }),
      () => timeSync(node, [bin('bgmon-status')], { env: homeEnv(home) }),
    );
    row('bgmon-status, 10 sleeping jobs', r.bgmon, r.baseline, 'pm2 jlist, same 10 jobs', 'report');
  } finally {
    spawnSync('pm2', ['kill'], { env, stdio: 'ignore' });
    await killByEnv(`PM2_HOME=${pm2Home}`);
    killBgmonHome(home);
  }
}

/** N `true` jobs through a bgmon queue of 4 in a fresh home: from the submission to the last end (ms). */
async function bgmonQueueRun(n, round) {
  const home = join(tempDir(`queue${round}`), 'home');
  cleanups.push(() => killBgmonHome(home));
  const specs =
    Array.from({ length: n }, (_, i) => JSON.stringify({ name: `q${i}`, cmd: ['true'], queue: 'w' })).join('\n') + '\n';
  // A run has ended once its record says so or its end file does (the supervisor writes the end
  // file; its Node step folds it a moment later).
  const hasEnded = (i) => {
    try {
      const rec = JSON.parse(readFileSync(join(home, 'jobs', `q${i}.json`), 'utf8'));
      if (!['QUEUED', 'RUNNING'].includes(rec.status)) return true;
      return /^\d+\n/.test(readFileSync(join(home, 'jobs', `.${rec.name}@${rec.id}.end`), 'latin1'));
    } catch {
      return false;
    }
  };
  // jobs end about in submission order: each poll reads on from the first one not seen ended, so
  // the poller costs a few reads, not a thousand every 20 ms (a core the queue needs)
  let firstRunning = 0;
  const allEnded = () => {
    while (firstRunning < n && hasEnded(firstRunning)) firstRunning++;
    return firstRunning === n;
  };
  const t0 = Date.now();
  const sub = spawnSync(node, [bin('bgmon-start'), '--slots', '4', '-'], {
    env: homeEnv(home),
    input: specs,
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  if (sub.status !== 0) throw new Error(`bgmon-start - exited ${sub.status}: ${sub.stderr}`);
  const submitted = Date.now() - t0;
  // poll the records rather than run bgmon-wait: wait advances queues too and would help
  await waitUntil(allEnded, 30 * 60_000);
  const ms = Date.now() - t0;
  untilQuiet(home); // the supervisors' last passes fold every run: not while the other side is timed
  return { ms, submitted };
}

/** The same N jobs through task-spooler, one tsp call per job, as tsp is used (ms). */
async function tspQueueRun(tspBin, n) {
  const sock = join(tempDir('tspq'), 'socket');
  const env = { ...process.env, TS_SOCKET: sock, TS_MAXFINISHED: String(n + 10), TMPDIR: dirname(sock) };
  try {
    spawnSync(tspBin, ['-S', '4'], { env, stdio: 'ignore' });
    const t1 = Date.now();
    for (let i = 0; i < n; i++) spawnSync(tspBin, ['true'], { env, stdio: 'ignore' });
    spawnSync(tspBin, ['-w'], { env, stdio: 'ignore' });
    return Date.now() - t1;
  } finally {
    spawnSync(tspBin, ['-K'], { env, stdio: 'ignore' });
    await killByEnv(`TS_SOCKET=${sock}`);
  }
}

async function queueVersusTsp() {
  // N `true` jobs through 4 slots, from the first submission to the last end: bgmon-start - (one
  // command) against task-spooler (tsp -S 4). Both create files for every job, so both wait on
  // the disk: each side starts after a `sync` (the cases before write tens of thousands of files,
  // and a side timed while they are written back took 2-5 times longer), and the rounds
  // alternate which goes first.
  const n = quick ? 200 : 1000;
  const tspBin = ['tsp', 'ts'].find(
    (b) => spawnSync('sh', ['-c', `command -v ${b} && ${b} -h 2>&1 | grep -qi spooler`]).status === 0,
  );
  const bgmonRuns = [];
  const tspRuns = [];
  const diskWaits = []; // ms each side waited for a quiet disk
  const rounds = quick || !tspBin ? 1 : 3;
  // an untimed round of each first: after the gigabyte cases before, the first processes and
  // files made were 3-4 times slower than the rest (on this VM, freed memory goes back to the
  // host and is faulted in again), whichever side met them
  if (!quick) {
    await bgmonQueueRun(200, 'warm-up');
    if (tspBin) await tspQueueRun(tspBin, 200);
  }
  for (let round = 0; round < rounds; round++) {
    const sides = [
      async () => bgmonRuns.push(await bgmonQueueRun(n, round)),
      async () => tspBin && tspRuns.push(await tspQueueRun(tspBin, n)),
    ];
    if (round % 2 === 1) sides.reverse();
    for (const side of sides) {
      spawnSync('sync');
      diskWaits.push(untilDiskQuiet());
      await side();
    }
  }
  const submitted = bgmonRuns.map((r) => r.submitted).join(', ');
  const what =
    `${n} \`true\` jobs through a queue of 4 (bgmon-start -, submission ${submitted} ms), to the last end ` +
    `(each side after a sync and a quiet disk: waited ${diskWaits.join(', ')} ms)`;
  const bgmonMs = median(bgmonRuns.map((r) => r.ms));
  if (!tspBin) {
    row(what, bgmonMs, null, '', 'report');
    rows.push({ what: 'peer task-spooler', note: 'skipped: not installed (apt-get install task-spooler)' });
    return;
  }
  row(what, bgmonMs, median(tspRuns), `tsp -S 4, same jobs, median of ${rounds} alternating rounds`, '≤ 1.5×');
}

async function queueHandOff() {
  // A queue of 1: the first job's last act stamps the time, the next job's first act does.
  const home = join(tempDir('handoff'), 'home');
  cleanups.push(() => killBgmonHome(home));
  const samples = [];
  for (let i = 0; i < RUNS; i++) {
    const a = join(home, '..', `a${i}`),
      b = join(home, '..', `b${i}`);
    bg(
      [bin('bgmon-start'), '--name', `a${i}`, '--queue', `h${i}`, '--', 'sh', '-c', `sleep 0.3; date +%s%3N > ${a}`],
      home,
    );
    bg([bin('bgmon-start'), '--name', `b${i}`, '--queue', `h${i}`, '--', 'sh', '-c', `date +%s%3N > ${b}`], home);
    await waitUntil(() => existsSync(b) && readFileSync(b, 'utf8').endsWith('\n'), 30_000);
    samples.push(Number(readFileSync(b, 'utf8')) - Number(readFileSync(a, 'utf8')));
  }
  row("queue hand-off: one job's end → the next queued job starts", median(samples), null, '', '≤ 50 ms');
}

// ---------- main ----------
const allCases = [
  commandWallTimes,
  statusOverManyRecords,
  statusBesideHistory,
  memoryPerJob,
  waitLatency,
  untilLatency,
  followLatency,
  resourcesOverJobs,
  tailOnHugeLog,
  tailSinceOnHugeLog,
  tailFollowLatency,
  bigOutput,
  versusPm2,
  queueVersusTsp,
  queueHandOff,
];
// --only NAME[,NAME]: run just those cases (their function names), e.g. --only bigOutput
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1].split(',') : null;
const cases = only ? allCases.filter((c) => only.includes(c.name)) : allCases;
/** Ends what the cases started and removes their directories; once, however the bench ends. */
let cleanedUp = false;
function cleanUp() {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const c of cleanups)
    try {
      c();
    } catch {}
  for (const d of temps) rmSync(d, { recursive: true, force: true });
}
process.on('SIGINT', () => {
  cleanUp();
  process.exit(130);
});
// also when it dies of an error (stderr closed by `| head`, say): nothing is left in /tmp
process.on('exit', cleanUp);
const startedAt = Date.now();
console.error(
  `bgmon bench${quick ? ' (quick)' : ''}: medians of ${WALL_RUNS} paired runs for wall times, ${RUNS} for ` +
    `latencies, after warm-ups; ${cpus().length} cores, node ${process.version}`,
);
try {
  for (const c of cases) {
    const t0 = Date.now();
    await c();
    console.error(`- ${c.name}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
} finally {
  cleanUp();
}

const fmt = (x) => (x === null || x === undefined ? '—' : String(x));
let md = `| what | bgmon | baseline | ratio | target | ok |\n|---|---|---|---|---|---|\n`;
for (const r of rows) {
  if (r.note) {
    md += `| ${r.what} | ${r.note} | | | | |\n`;
    continue;
  }
  const baseline = r.baseline === null ? '—' : `${r.baseline} ${r.unit} (${r.baseline_is})`;
  const ratio = r.ratio === null ? '—' : `${r.ratio}×`;
  const ok = r.ok === null ? 'report' : r.ok ? 'yes' : '**no**';
  md += `| ${r.what} | ${fmt(r.bgmon)} ${r.unit} | ${baseline} | ${ratio} | ${r.target} | ${ok} |\n`;
}
console.log(md);
// only a full run replaces the committed results; --quick or --only writes beside them
const resultsFile = quick || only ? 'results-partial.json' : 'results.json';
mkdirSync(join(root, 'bench'), { recursive: true });
writeFileSync(
  join(root, 'bench', resultsFile),
  JSON.stringify(
    {
      date: new Date().toISOString(),
      quick,
      runs: RUNS,
      wall_runs: WALL_RUNS,
      node: process.version,
      cores: cpus().length,
      seconds: Math.round((Date.now() - startedAt) / 1000),
      rows,
    },
    null,
    2,
  ) + '\n',
);
console.error(`wrote bench/${resultsFile} in ${Math.round((Date.now() - startedAt) / 1000)} s`);
