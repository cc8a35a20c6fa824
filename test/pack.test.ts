import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGES, ROOT, slowTest, withHome } from './helpers';

test('every package is publishable: name, version, bin, files, engines, license, README, types', () => {
  for (const name of PACKAGES) {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'packages', name, 'package.json'), 'utf8'));
    assert.is(pkg.name, name);
    assert.match(pkg.version, /^\d+\.\d+\.\d+$/);
    assert.is(pkg.license, 'MIT');
    assert.is(pkg.engines.node, '>=20');
    assert.ok(Array.isArray(pkg.files) && pkg.files.includes('dist'), `${name} files`);
    assert.ok(pkg.private !== true, `${name} is not private`);
    assert.ok(readFileSync(join(ROOT, 'packages', name, 'README.md'), 'utf8').length > 100, `${name} README`);
    if (name === 'bgmon-state') assert.is(pkg.types, 'dist/index.d.ts');
    else assert.equal(Object.keys(pkg.bin), [name]);
  }
});

test('changesets bump every package together (one fixed group covering all of them)', () => {
  const config = JSON.parse(readFileSync(join(ROOT, '.changeset', 'config.json'), 'utf8'));
  assert.is(config.fixed.length, 1);
  const group: string[] = config.fixed[0];
  const covered = (name: string) => group.some((g) => (g.endsWith('*') ? name.startsWith(g.slice(0, -1)) : name === g));
  for (const name of PACKAGES) assert.ok(covered(name), `${name} is in the fixed group`);
  const versions = new Set(
    PACKAGES.map((n) => JSON.parse(readFileSync(join(ROOT, 'packages', n, 'package.json'), 'utf8')).version),
  );
  assert.is(versions.size, 1, 'all packages share one version');
});

slowTest(
  'packed tarballs install with npm into an empty folder and run a real job',
  withHome(async (h) => {
    const tarballs = join(h.dir, 'tarballs');
    const app = join(h.dir, 'app');
    mkdirSync(tarballs);
    mkdirSync(app);
    for (const name of PACKAGES)
      execFileSync('pnpm', ['pack', '--pack-destination', tarballs], {
        cwd: join(ROOT, 'packages', name),
        stdio: 'ignore',
      });
    const files = readdirSync(tarballs).map((f) => join(tarballs, f));
    assert.is(files.length, PACKAGES.length);
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...files], {
      cwd: app,
      stdio: 'ignore',
      timeout: 240_000,
    });
    const bin = (b: string) => join(app, 'node_modules', '.bin', b);
    const start = await h.run(bin('bgmon-start'), ['--name', 'packed', '--', 'sh', '-c', 'echo from-packed; exit 6'], {
      cwd: app,
    });
    assert.is(start.code, 0, start.stderr);
    assert.is(JSON.parse(start.stdout).status, 'RUNNING');
    const wait = await h.run(bin('bgmon'), ['wait', 'packed'], { cwd: app });
    assert.is(wait.code, 6, wait.stderr);
    const status = await h.run(bin('bgmon-status'), ['--json'], { cwd: app });
    assert.is(JSON.parse(status.stdout).exit_code, 6);
    assert.is((await h.run(bin('bgmon-tail'), ['packed'], { cwd: app })).stdout, 'from-packed\n');
    const typings = join(app, 'node_modules', 'bgmon-state', 'dist');
    assert.match(
      readFileSync(join(typings, 'index.d.ts'), 'utf8'),
      /export \{ [^}]*\bJobRecord\b[^}]* \} from '\.\/record'/,
    );
    assert.match(
      readFileSync(join(typings, 'cli-api.d.ts'), 'utf8'),
      /export \{ [^}]*\brunCommand\b[^}]* \} from '\.\/cli'/,
    );
    const cli = execFileSync(process.execPath, ['-e', 'console.log(typeof require("bgmon-state/cli").runCommand)'], {
      cwd: app,
    });
    assert.is(cli.toString(), 'function\n', "bgmon-state/cli resolves through the package's exports");
    assert.match(readFileSync(join(typings, 'record.d.ts'), 'utf8'), /export interface JobRecord/);
    const lib = execFileSync(process.execPath, ['-e', 'console.log(typeof require("bgmon-state").currentState)'], {
      cwd: app,
    }).toString();
    assert.is(lib, 'function\n');
  }),
);

test.run();
