import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseSignal, signalNames, STATUSES } from 'bgmon-state';
import { commands, flagWord, valuesOf } from 'bgmon-state/cli';
import { binPath, ROOT, slowTest, withHome, type TestHome } from '../helpers';

const DOCS = [commands.bgmon, ...commands.SUBCOMMANDS];
const MAN_PAGES = DOCS.map((d) => `packages/${d.name}/man/${d.name}.1`);
const GENERATED = [...MAN_PAGES, 'docs/commands.md', 'packages/bgmon/completions/bgmon.bash'];
const COMPLETION = join(ROOT, 'packages/bgmon/completions/bgmon.bash');
// Decided up front: without groff or git these checks cannot run here, and say so as skipped.
const hasGroff = spawnSync('groff', ['--version']).status === 0;
const inGit = spawnSync('git', ['-C', ROOT, 'rev-parse', '--is-inside-work-tree']).stdout?.toString().trim() === 'true';

const manCheck = (into: string) =>
  spawnSync(process.execPath, [join(ROOT, 'scripts/man.mjs'), '--check', into], { encoding: 'utf8' });

test(
  'the man pages, docs/commands.md and the completion on disk are exactly what the docs generate',
  withHome(async (h) => {
    const ok = manCheck(ROOT);
    assert.is(ok.status, 0, ok.stderr);
    // the check can fail: a copy with one page edited by hand and the completion missing
    const copy = join(h.dir, 'copy');
    for (const path of GENERATED) {
      mkdirSync(dirname(join(copy, path)), { recursive: true });
      cpSync(join(ROOT, path), join(copy, path));
    }
    writeFileSync(
      join(copy, MAN_PAGES[1]),
      readFileSync(join(ROOT, MAN_PAGES[1]), 'utf8').replace('EXIT STATUS', 'EXIT CODES'),
    );
    execFileSync('rm', [join(copy, 'packages/bgmon/completions/bgmon.bash')]);
    const drift = manCheck(copy);
    assert.is(drift.status, 1);
    assert.equal(
      drift.stderr
        .trim()
        .split('\n')
        .map((l) => l.split(' ')[0])
        .sort(),
      [MAN_PAGES[1], 'packages/bgmon/completions/bgmon.bash'].sort(),
    );
  }),
);

(inGit ? test : test.skip)('the generated files are committed as generated (no edits left uncommitted)', () => {
  const dirty = execFileSync('git', ['-C', ROOT, 'ls-files', '--modified', '--others', '--', ...GENERATED])
    .toString()
    .trim();
  assert.is(dirty, '', 'run pnpm build and commit the generated files');
});

(hasGroff ? test : test.skip)("every man page renders with groff without a warning, in nq's sections", () => {
  for (const page of MAN_PAGES) {
    const r = spawnSync('groff', ['-man', '-Tutf8', '-ww', join(ROOT, page)], { encoding: 'utf8' });
    assert.is(r.status, 0, page);
    assert.is(r.stderr, '', page);
    const text = r.stdout.replace(/.\x08/g, '');
    for (const section of [
      'NAME',
      'SYNOPSIS',
      'DESCRIPTION',
      'OPTIONS',
      'EXIT STATUS',
      'EXAMPLES',
      'FILES',
      'ENVIRONMENT',
      'SEE ALSO',
    ]) {
      assert.match(text, new RegExp(`^${section}$`, 'm'), `${page}: ${section}`);
    }
  }
});

test('every package with a binary installs its man page (package.json man and files)', () => {
  for (const doc of DOCS) {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'packages', doc.name, 'package.json'), 'utf8'));
    assert.equal(pkg.man, [`./man/${doc.name}.1`], doc.name);
    assert.ok(pkg.files.includes('man'), doc.name);
  }
});

slowTest(
  '--help names exactly the flags the parser takes, and the parser takes every flag the help names',
  withHome(async (h) => {
    for (const doc of commands.SUBCOMMANDS) {
      const run = await h.run(doc.name, ['--help']);
      assert.is(run.code, 0, `${doc.name} --help: ${run.signal ?? ''} ${run.stderr}`);
      const help = run.stdout;
      const helpFlags = new Set(help.match(/(?<=^ {2}(?:-\w, )?)-{1,2}[a-z][a-z-]*/gm));
      const docFlags = [...doc.options, ...commands.STANDARD_OPTIONS].flatMap((o) => [
        flagWord(o.flag),
        ...(o.alias ? [`-${o.alias}`] : []),
      ]);
      assert.equal([...helpFlags].sort(), [...docFlags].sort(), doc.name);
      for (const o of doc.options) {
        const words = [flagWord(o.flag), ...(o.arg ? ['1'] : []), '--help'];
        const r = await h.run(doc.name, words);
        assert.is(r.code, 0, `${doc.name} ${words.join(' ')}: ${r.stderr}`);
        if (o.alias) assert.is((await h.run(doc.name, [`-${o.alias}`, '--help'])).code, 0, `${doc.name} -${o.alias}`);
      }
    }
  }),
);

async function complete(h: TestHome, words: string[]): Promise<string[]> {
  const quoted = words.map((w) => `'${w}'`).join(' ');
  const script =
    `source '${COMPLETION}'; COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; ` +
    `_bgmon_complete; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = await h.run('/bin/bash', ['-c', script]);
  assert.is(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).sort();
}

slowTest(
  'completion: states and signals are the ones the parsers accept, every one of them',
  withHome(async (h) => {
    assert.equal(await complete(h, ['bgmon-status', '--status', '']), [...STATUSES].sort());
    const signals = await complete(h, ['bgmon', 'stop', '--signal', '']);
    assert.equal(signals, [...signalNames()].sort());
    for (const name of signals) assert.ok(parseSignal(name) !== null, name);
    const numbers = new Set(signals.map((s) => parseSignal(s)));
    for (let n = 1; n <= 64; n++) if (n !== 32 && n !== 33) assert.ok(numbers.has(n), `signal ${n} has a name`);
    assert.equal(valuesOf('states'), [...STATUSES]);
    assert.ok((await complete(h, ['bgmon-stop', '--signal', 'RTMIN+1'])).includes('RTMIN+15'));
  }),
);

slowTest(
  "completion: comma lists, --flag=value, directories, the job's command, flags per command",
  withHome(async (h) => {
    await h.start('train', ['true']);
    mkdirSync(join(h.dir, 'some dir'));
    assert.equal(await complete(h, ['bgmon-status', '--status', 'RUNNING,F']), ['RUNNING,FAILED']);
    assert.equal(await complete(h, ['bgmon-status', '--status', 'failed,S']), [
      'failed,STALE',
      'failed,STOPPED',
      'failed,SUCCEEDED',
    ]);
    assert.equal(await complete(h, ['bgmon-stop', '--signal', '=', 'KI']), ['KILL']);
    assert.ok((await complete(h, ['bgmon-stop', '--signal', '='])).includes('TERM'));
    assert.equal(
      await complete(h, ['bgmon-start', '--cwd', 'some']),
      ['some dir'],
      'a directory with a space stays one word',
    );
    assert.equal(await complete(h, ['bgmon-start', '--after', 't']), ['train']);
    assert.equal(await complete(h, ['bgmon-stop', '--grace', '']), [], 'a duration has no fixed values');
    assert.ok(
      (await complete(h, ['bgmon-start', '--name', 'x', 'slee'])).includes('sleep'),
      'first operand: a command',
    );
    assert.ok((await complete(h, ['bgmon-start', 'sleep', 'so'])).includes('some dir'), 'its arguments: files');
    assert.ok(
      (await complete(h, ['bgmon-start', '--', 'sleep', '--na'])).length === 0,
      'no bgmon flags inside the command',
    );
    for (const doc of commands.SUBCOMMANDS) {
      const want = [...doc.options, ...commands.STANDARD_OPTIONS].flatMap((o) => [
        flagWord(o.flag),
        ...(o.alias ? [`-${o.alias}`] : []),
      ]);
      assert.equal(await complete(h, [doc.name, '-']), want.sort(), doc.name);
    }
    assert.equal(await complete(h, ['bgmon', '']), [
      '--help',
      '--version',
      '-h',
      'rm',
      'signal',
      'start',
      'status',
      'stop',
      'tail',
      'wait',
    ]);
  }),
);

function relativeLinks(file: string): string[] {
  const text = readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
  const targets = [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]);
  return targets.filter((t) => !/^[a-z]+:/.test(t) && !t.startsWith('#')).map((t) => t.split('#')[0]);
}

test('every relative link in the READMEs and docs/ points to a file in the checkout; nothing points outside it', () => {
  const files = [
    'README.md',
    ...readdirSync(join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
    ...readdirSync(join(ROOT, 'packages')).map((p) => `packages/${p}/README.md`),
  ];
  let checked = 0;
  for (const file of files) {
    for (const target of relativeLinks(join(ROOT, file))) {
      const path = resolve(ROOT, dirname(file), target);
      assert.ok(path.startsWith(ROOT + '/'), `${file}: ${target} points outside the checkout`);
      assert.ok(existsSync(path), `${file}: ${target} does not exist`);
      checked++;
    }
    assert.not.match(readFileSync(join(ROOT, file), 'utf8'), /\.\.\/shared/, `${file} refers to ../shared`);
  }
  assert.ok(checked >= 10, `only ${checked} links checked`);
});

test('the help of every command runs from the same docs as its parser (no hand-written usage left)', () => {
  for (const doc of commands.SUBCOMMANDS) {
    const src = readFileSync(join(ROOT, 'packages', doc.name, 'src/index.ts'), 'utf8');
    const key = doc.name.slice(6);
    const runs = new RegExp(
      `runCommand\\(commandSpec\\(commands\\.${key}, version\\)|runHostedCommand\\(commands\\.${key}, version,`,
    );
    assert.match(src, runs, doc.name);
    assert.not.match(src, /Usage:/, doc.name);
  }
  assert.ok(existsSync(binPath('bgmon')));
});

test(
  'the demo tells the same story on every run: fetch RUNNING and build QUEUED until it releases fetch',
  withHome(async (h) => {
    const r = await h.run('/bin/sh', [join(ROOT, 'scripts/demo.sh')], { timeoutMs: 60_000 });
    assert.is(r.code, 0, `stderr: ${r.stderr}\nstdout: ${r.stdout}`);
    const tables = r.stdout
      .split('$ bgmon-status --table\n')
      .slice(1)
      .map((t) => t.split('\n\n')[0]);
    assert.is(tables.length, 2);
    assert.match(tables[0], /^fetch +RUNNING /m);
    assert.match(tables[0], /^build +QUEUED /m);
    for (const name of ['fetch', 'build', 'publish']) assert.match(tables[1], new RegExp(`^${name} +SUCCEEDED `, 'm'));
    assert.match(
      r.stdout,
      /\$ bgmon-tail -f fetch\nfetching 4 parts\nfetched part 1\n(fetched part \d\n){2}fetched part 4\n/,
    );
  }),
);

test.run();
