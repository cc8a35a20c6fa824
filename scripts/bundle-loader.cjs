'use strict';
// The build copies this file to packages/<bin>/dist/<bin>.js, which the bin shim requires: it runs
// the binary's bundle (<bin>.bundle.js) with the V8 code cache the build made for it (<bin>.cache),
// so that no command compiles its bundle, nor any function of it, at every start (a few ms each).
// The cache is used only when it was made from this very bundle (the key the build appended to
// the bundle heads the cache) and V8 accepts it (same V8, same flags, intact); else the bundle is
// compiled as Node would compile it, so a missing, stale, truncated or foreign cache costs nothing
// but that time.
//
// The build also runs this file itself, as `node bundle-loader.cjs --make-code-caches BUNDLE...`,
// so that a cache is made with the very wrapper it is used with (and the tests, with
// --code-cache-state BUNDLE..., to see that a plain `node` uses them).
const { readFileSync } = require('node:fs');
const { Script } = require('node:vm');

const KEY_LINE = /\n\/\/ bgmon-cache-key: ([0-9a-f]{16})\n$/;
const KEY_BYTES = 16;

/** The bundle as one function of a CommonJS module's five variables, as Node's loader wraps it. */
function compile(file, source, cachedData) {
  const wrapped = `(function (exports, require, module, __filename, __dirname) { ${source}\n})`;
  return new Script(wrapped, { filename: file, cachedData });
}

/** The cache key the build appended to the bundle, or null. */
const keyOf = (source) => KEY_LINE.exec(source.slice(-64))?.[1] ?? null;

/** The V8 data of `cacheFile` when it was made from the bundle with this key, else undefined. */
function cachedDataFor(cacheFile, key) {
  if (key === null) return undefined;
  try {
    const cache = readFileSync(cacheFile);
    if (cache.length > KEY_BYTES && cache.toString('latin1', 0, KEY_BYTES) === key) return cache.subarray(KEY_BYTES);
  } catch {}
  return undefined;
}

function runBundle(loader) {
  const file = loader.filename.replace(/\.js$/, '.bundle.js');
  const source = readFileSync(file, 'utf8');
  const script = compile(file, source, cachedDataFor(cacheFileOf(file), keyOf(source)));
  const bundle = new loader.constructor(file, loader);
  bundle.filename = file;
  bundle.paths = loader.paths;
  script.runInThisContext().call(bundle.exports, bundle.exports, require, bundle, file, __dirname);
}

/** Whether this Node runs the bundle with its cache: "used", "rejected" (by V8) or "none" (no cache of it). */
function cacheState(file) {
  const source = readFileSync(file, 'utf8');
  const data = cachedDataFor(cacheFileOf(file), keyOf(source));
  if (data === undefined) return 'none';
  return compile(file, source, data).cachedDataRejected ? 'rejected' : 'used';
}

const cacheFileOf = (bundleFile) => bundleFile.replace(/\.bundle\.js$/, '.cache');

/**
 * Writes BUNDLE's cache beside it, by rename, unless this Node already uses the one there. Every
 * function is compiled first (V8's --no-lazy, and no reuse of a compile of the same text made
 * above; both set back before the cache is made, so that it carries the flags of a plain `node`):
 * a command then compiles nothing, whichever of its paths it takes.
 */
function makeCodeCache(file) {
  const { closeSync, fsyncSync, openSync, renameSync, writeSync } = require('node:fs');
  const { setFlagsFromString } = require('node:v8');
  if (cacheState(file) === 'used') return;
  const source = readFileSync(file, 'utf8');
  const key = keyOf(source);
  if (key === null) throw new Error(`${file}: no cache key at its end`);
  setFlagsFromString('--no-lazy --no-compilation-cache');
  const script = compile(file, source);
  setFlagsFromString('--lazy --compilation-cache');
  const cacheFile = cacheFileOf(file);
  const temp = `${cacheFile}.${process.pid}.tmp`;
  // on disk before the rename: V8 checks only a cache's header, and a cache damaged inside (a
  // power loss between write and rename) would abort every command until the next build
  const fd = openSync(temp, 'w');
  try {
    writeSync(fd, Buffer.concat([Buffer.from(key, 'latin1'), script.createCachedData()]));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, cacheFile);
}

const [mode, ...files] = process.argv.slice(2);
if (require.main === module && mode === '--make-code-caches') files.forEach(makeCodeCache);
else if (require.main === module && mode === '--code-cache-state')
  for (const file of files) console.log(`${file} ${cacheState(file)}`);
else runBundle(module);
