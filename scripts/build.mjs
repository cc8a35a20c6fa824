// Bundles each binary into one CommonJS file (dist/<bin>.bundle.js): no TypeScript compiler and no
// module resolution on the run path, so a command starts about as fast as `node -e 0`. Beside it go
// a V8 code cache of it (dist/<bin>.cache) and the loader the bin shim requires (dist/<bin>.js, a
// copy of scripts/bundle-loader.cjs), which runs the bundle with that cache.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
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
async function bundle(options, withKey = false) {
  const { outputFiles } = await build({ ...options, write: false });
  for (const { path, contents } of outputFiles) putFile(path, withKey ? withCacheKey(contents) : contents);
}

function putFile(path, contents) {
  if (existsSync(path) && Buffer.compare(readFileSync(path), contents) === 0) return;
  mkdirSync(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, contents);
  renameSync(temp, path);
}

/** The bundle with its cache key appended: a code cache is used only with the bundle it was made from. */
function withCacheKey(contents) {
  const key = createHash('sha256').update(contents).digest('hex').slice(0, 16);
  return Buffer.concat([contents, Buffer.from(`// bgmon-cache-key: ${key}\n`)]);
}

/**
 * Makes the code caches in a plain `node` (no NODE_OPTIONS: V8 refuses a cache made under other
 * flags), then puts the loaders in place, last: a binary started meanwhile finds a loader only
 * beside its bundle. A cache that cannot be made is a warning: the loader compiles without one.
 */
function makeCodeCaches(bins) {
  const loader = join(root, 'scripts/bundle-loader.cjs');
  const { NODE_OPTIONS: _, ...env } = process.env;
  const made = spawnSync(process.execPath, [loader, '--make-code-caches', ...bins.map((b) => `${b}.bundle.js`)], {
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (made.status !== 0) console.warn(`build: no code caches made (${made.error?.message ?? `exit ${made.status}`})`);
  const text = readFileSync(loader);
  for (const bin of bins) putFile(`${bin}.js`, text);
}

const jobs = [];
const bins = [];
for (const dir of readdirSync(join(root, 'packages'))) {
  const pkgDir = join(root, 'packages', dir);
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
  const entry = join(pkgDir, 'src/index.ts');
  if (!existsSync(entry)) continue;
  if (pkg.bin) {
    for (const bin of Object.keys(pkg.bin)) {
      const base = join(pkgDir, 'dist', bin);
      bins.push(base);
      jobs.push(bundle({ ...common, entryPoints: [entry], outfile: `${base}.bundle.js` }, true));
    }
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
makeCodeCaches(bins);

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
