// Bundles each binary into one CommonJS file (dist/<bin>.js): no TypeScript compiler and no
// module resolution on the run path, so a command starts about as fast as `node -e 0`.
import { build } from 'esbuild';
import { readdirSync, readFileSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const stateSrc = join(root, 'packages/bgmon-state/src/index.ts');
// The supervisor is a real shell file (checked by shellcheck in the tests), inlined as text.
const supervisorSh = readFileSync(join(root, 'packages/bgmon-state/src/supervisor.sh'), 'utf8');
const common = {
  bundle: true,
  define: { __SUPERVISOR_SH__: JSON.stringify(supervisorSh) },
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  logLevel: 'warning',
  plugins: [stateSource()],
};

/** bgmon-state and bgmon-state/cli resolve to their sources: bundled, not looked up in node_modules. */
function stateSource() {
  const paths = { 'bgmon-state': stateSrc, 'bgmon-state/cli': join(root, 'packages/bgmon-state/src/cli-api.ts') };
  return {
    name: 'bgmon-state-source',
    setup(b) {
      b.onResolve({ filter: /^bgmon-state(\/cli)?$/ }, (args) => ({ path: paths[args.path] }));
    },
  };
}

/**
 * Builds one bundle and puts it in place by rename, and only when it changed. esbuild's own write
 * truncates the file in place: a binary (or a job's supervisor) started meanwhile, e.g. by a
 * test while pack.test.ts's `pnpm pack` rebuilds, would load an empty or half file and exit 0
 * silently or crash.
 */
async function bundle(options) {
  const { outputFiles } = await build({ ...options, write: false });
  for (const { path, contents } of outputFiles) {
    if (existsSync(path) && Buffer.compare(readFileSync(path), contents) === 0) continue;
    mkdirSync(dirname(path), { recursive: true });
    const temp = `${path}.${process.pid}.tmp`;
    writeFileSync(temp, contents);
    renameSync(temp, path);
  }
}

const jobs = [];
for (const dir of readdirSync(join(root, 'packages'))) {
  const pkgDir = join(root, 'packages', dir);
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
  const entry = join(pkgDir, 'src/index.ts');
  if (!existsSync(entry)) continue;
  if (pkg.bin) {
    for (const bin of Object.keys(pkg.bin))
      jobs.push(bundle({ ...common, entryPoints: [entry], outfile: join(pkgDir, 'dist', `${bin}.js`) }));
  } else {
    // the library itself: its dependencies stay external, as npm installs them
    const external = Object.keys(pkg.dependencies ?? {});
    jobs.push(bundle({ ...common, entryPoints: [entry], outfile: join(pkgDir, 'dist/index.js'), external }));
    jobs.push(
      bundle({
        ...common,
        entryPoints: [join(pkgDir, 'src/cli-api.ts')],
        outfile: join(pkgDir, 'dist/cli.js'),
        external,
      }),
    );
  }
}
await Promise.all(jobs);

// Man pages, docs/commands.md and the bash completion, from the same command docs as --help.
const { writeGenerated } = await import('./man.mjs');
for (const path of await writeGenerated()) console.log(`updated ${path} (generated: commit it)`);

// --types: bgmon-state's declaration files, for the published library (run on pack).
if (process.argv.includes('--types')) {
  const { execFileSync } = await import('node:child_process');
  execFileSync(
    process.execPath,
    [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'packages/bgmon-state/tsconfig.build.json')],
    { stdio: 'inherit' },
  );
}
