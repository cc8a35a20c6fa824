// bgmon-status --resources with real jobs: memory, CPU time and processes of the whole job (its
// group and the children that escaped it), the CPU share between two calls, nulls for the rest.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { eventually, jobProcs, lines, rssKb, slowTest, withHome, type TestHome } from '../helpers';

// Fills 50 MB (touched, so resident), starts a child that leaves the job's session holding 20 MB
// more, then spins the CPU until killed.
const HOG = [
  "const { spawn } = require('child_process');",
  'globalThis.keep = Buffer.alloc(50e6, 1);',
  "spawn(process.execPath, ['-e', 'globalThis.k = Buffer.alloc(20e6, 1); setInterval(() => {}, 1e3)'], { detached: " +
    "true, stdio: 'ignore' });",
  "require('fs').writeFileSync('ready', '');",
  'for (;;) {}',
].join('\n');

async function resources(h: TestHome, args: string[] = []): Promise<any[]> {
  const r = await h.run('bgmon-status', ['--resources', '--json', ...args]);
  assert.is(r.code, 0, r.stderr);
  return lines(r.stdout);
}

slowTest(
  'a job holding 70 MB over two processes (one escaped) and spinning: rss, cpu, procs, share',
  withHome(async (h) => {
    const rec = await h.start('hog', ['node', '-e', HOG], ['--cwd', h.dir]);
    await h.start('done', ['true']);
    await h.start('later', ['true'], ['--after', 'hog']);
    await eventually(
      () => existsSync(join(h.dir, 'ready')) && jobProcs(rec).length === 2,
      20_000,
      'the hog and its escaped child',
    );
    const pids = jobProcs(rec);
    await eventually(() => pids.reduce((sum, pid) => sum + rssKb(pid), 0) > 65_000, 20_000, 'both buffers resident');
    const [first] = await resources(h, ['hog']);
    assert.is(first.procs, 2, 'the leader and the child that left its session');
    const rss = pids.reduce((sum, pid) => sum + rssKb(pid), 0);
    assert.ok(first.rss_kb > 65_000, `rss_kb ${first.rss_kb}: both buffers`);
    assert.ok(Math.abs(first.rss_kb - rss) < rss * 0.2, `rss_kb ${first.rss_kb} is what /proc says (${rss})`);
    assert.ok(first.cpu_ms > 0, `cpu_ms ${first.cpu_ms}`);
    await eventually(
      async () => (await resources(h, ['hog']))[0].cpu_ms > first.cpu_ms + 200,
      20_000,
      'CPU time to grow',
    );
    const [again] = await resources(h, ['hog']);
    assert.ok(
      again.cpu_pct !== null && again.cpu_pct > 0 && again.cpu_pct <= 100 * 64,
      `cpu_pct ${again.cpu_pct} since the last call`,
    );
    const all = await resources(h);
    const byName = Object.fromEntries(all.map((r) => [r.name, r]));
    for (const name of ['done', 'later']) {
      const r = byName[name];
      assert.equal(
        [r.rss_kb, r.cpu_ms, r.procs, r.cpu_pct],
        [null, null, null, null],
        `${name} (${r.status}) does not run`,
      );
    }
    const table = await h.run('bgmon-status', ['--resources', '--table']);
    assert.is(table.code, 0, table.stderr);
    const [header, ...rows] = table.stdout.trimEnd().split('\n');
    assert.match(header, /^NAME\s+STATUS\s+PID\s+START\s+AGE\s+EXIT\s+RSS\s+CPU\s+%CPU\s+PROCS\s+(NOTE\s+)?CMD$/);
    assert.match(rows.find((row) => row.startsWith('hog '))!, /\s\d+M\s+[\d.]+s\s+[\d.-]+\s+2\s/);
    assert.match(rows.find((row) => row.startsWith('done '))!, /\s-\s+-\s+-\s+-\s/);
  }),
);

test(
  'the first sample has no share; a job that ended has null resources',
  withHome(async (h) => {
    await h.start('idle', ['sleep', '30']);
    const [first] = await resources(h);
    assert.is(first.cpu_pct, null, 'nothing to compare with');
    assert.is(first.procs, 1);
    assert.ok(first.rss_kb > 0);
    assert.is((await h.run('bgmon-stop', ['idle'])).code, 0);
    const [stopped] = await resources(h);
    assert.is(stopped.procs, null);
  }),
);

test(
  'a call that looks at other jobs keeps the samples it did not take: each job still gets its share',
  withHome(async (h) => {
    await h.start('a', ['sleep', '60']);
    await h.start('b', ['sleep', '60']);
    const share = async (name: string) => {
      const r = await h.run('bgmon-status', [name, '--resources', '--json']);
      assert.is(r.code, 0, r.stderr);
      return lines(r.stdout)[0].cpu_pct;
    };
    assert.is(await share('a'), null, 'a: first sample');
    assert.is(await share('b'), null, 'b: first sample');
    for (const name of ['a', 'b']) {
      const pct = await share(name);
      assert.ok(typeof pct === 'number' && pct >= 0, `${name}: a share from its own earlier sample, got ${pct}`);
    }
  }),
);

test.run();
