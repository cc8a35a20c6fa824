import { closeSync, lstatSync, readdirSync, readSync, type Stats } from 'node:fs';
import { isAscii } from 'node:buffer';
import { join } from 'node:path';
import { openOwnFileStat, unlinkQuietly, writeFileAtomic } from './fsutil';
import { readStat } from './proc';
import type { Home } from './paths';
import { parseRecord, readRecord, readRecordBytes, type JobRecord } from './record';

/*
 * Listing every job opens, fstats, reads and closes every record file, and most of them belong
 * to runs that ended long ago and never change again. run/records.cache keeps the text of those
 * files, each entry keyed by what lstat says of its file: inode, size, mtime and ctime. A listing
 * then lstats a file (one call instead of four) and takes its text from the cache while the key
 * is unchanged; any other file is read as always. The files stay the truth: an entry is never
 * used without its file's lstat, the cache is made from the files alone and may be removed at any
 * time, and a planted or broken cache is no cache.
 *
 * A key is only as fine as the clock that stamps files (as with git's "racily clean" index
 * entries): a file changed in place twice within one tick keeps its mtime and ctime. So a file
 * is cached only when its last change (ctime, which no user can set) was CHANGE_MARGIN_MS or more
 * before the moment it was opened: any later change then stamps a later ctime. bgmon itself
 * never changes a record in place (it renames a new file over it), so this guards hand edits.
 */

/** A listing of fewer jobs reads their files: the cache itself would cost more to read. */
const CACHE_MIN_NAMES = 64;
/** The cache is written again once this many files were read that it could have held, or left it. */
const REWRITE_AFTER = 64;
const CHANGE_MARGIN_MS = 1000;
/** Anything larger is not our cache (10,000 records make about 6 MB), and none is written larger. */
const MAX_CACHE_BYTES = 256 * 1024 * 1024;
/**
 * A larger record (a long command line) is read from its file: a copy would save no reading, and
 * 64 of 4 MB would make a cache too large to be read back, written again by every listing.
 */
const MAX_CACHED_RECORD_BYTES = 64 * 1024;

/*
 * The file: MAGIC (16 bytes), the number of entries N (a float64), N keys of four float64 each
 * (inode, size, mtimeMs, ctimeMs: as Node's lstat gives them, so compared exactly, never parsed),
 * then N lines "NAME<TAB>TEXT", TEXT being the record file's one line. Written whole and renamed
 * into place; anything else (cut, planted, of another version) reads as no cache.
 */
const MAGIC = 'bgmon-rcache-v1\n';
const KEYS_AT = 24;

const recordCachePath = (home: Home) => join(home.run, 'records.cache');

/** Reads records by name, through the cache when there is one worth reading (see above). */
export interface RecordSource {
  /** The current record of a name, exactly as readRecord gives it (null when it has none). */
  read(name: string): JobRecord | null;
  /** After a listing of every job: writes the cache again when it has fallen behind the files. */
  finish(): void;
}

interface Cache {
  /** each entry's name */
  names: string[];
  /** entry number by name */
  index: Map<string, number>;
  /** each entry's key: inode, size, mtimeMs, ctimeMs */
  keys: Float64Array;
  /** each entry's record text */
  texts: string[];
}

const NO_CACHE: Cache = { names: [], index: new Map(), keys: new Float64Array(0), texts: [] };
const direct = (home: Home): RecordSource => ({ read: (name) => readRecord(home, name), finish() {} });

// one read of the cache per process: a listing made twice (status after a queue advance) reuses it
let loaded: { path: string; cache: Cache } | null = null;

/** A source for a listing of every job, `count` names long (fewer than CACHE_MIN_NAMES: no cache). */
export function listingSource(home: Home, count: number): RecordSource {
  if (count < CACHE_MIN_NAMES) return direct(home);
  const path = recordCachePath(home);
  if (loaded?.path !== path) loaded = { path, cache: readCache(path) };
  const { names: entryNames, index, keys, texts } = loaded.cache;
  const hits: number[] = []; // entries still true of their files
  const forgottenBefore = forgetMark(home);
  const fresh: { names: string[]; keys: number[]; texts: string[] } = { names: [], keys: [], texts: [] };
  let listedInCache = 0;
  return {
    read(name) {
      // recordPath's path without path.join's normalising (a listed name holds no '/'): ~3 ms of 10,000
      const file = `${home.jobs}/${name}.json`;
      const i = index.get(name);
      if (i !== undefined) {
        listedInCache++;
        const rec = isTrueOf(lstatQuietly(file), keys, i) ? parseCached(file, name, texts[i]) : null;
        if (rec !== null) {
          hits.push(i);
          return rec;
        }
      }
      const openedAt = Date.now();
      const got = readRecordBytes(file);
      if (got === null) return null;
      const rec = parseRecord(file, name, got.text);
      // only a valid one-line record of a usual size, settled for long enough (see above)
      const { st, text } = got;
      const settled = st.ctimeMs <= openedAt - CHANGE_MARGIN_MS && st.size <= MAX_CACHED_RECORD_BYTES;
      if (settled && text.indexOf('\n') === text.length - 1) {
        fresh.names.push(name);
        fresh.keys.push(st.ino, st.size, st.mtimeMs, st.ctimeMs);
        fresh.texts.push(text);
      }
      return rec;
    },
    finish() {
      const gone = index.size - listedInCache;
      if (fresh.names.length < REWRITE_AFTER && gone < REWRITE_AFTER) return;
      const names = [...hits.map((i) => entryNames[i]), ...fresh.names];
      const cache: Cache = {
        names,
        index: new Map(names.map((name, n) => [name, n])),
        keys: Float64Array.from([...hits.flatMap((i) => [...keys.subarray(i * 4, i * 4 + 4)]), ...fresh.keys]),
        texts: [...hits.map((i) => texts[i]), ...fresh.texts],
      };
      const bytes = encodeCache(cache);
      if (bytes.length > MAX_CACHE_BYTES) return; // readCache would refuse it: no cache
      removeKilledWritersTemps(home);
      try {
        writeFileAtomic(path, bytes);
      } catch {
        return; // a cache that cannot be written (full disk, read-only home) is no cache
      }
      // a bgmon-rm since this listing began may have removed records it read: their copies go
      // too (rm marks before it removes the cache, so one of the two always removes it)
      if (forgetMark(home) !== forgottenBefore) {
        unlinkQuietly(path);
        loaded = null;
        return;
      }
      loaded = { path, cache };
    },
  };
}

/**
 * After bgmon-rm: the cache (and a killed writer's temp file) may hold the text of what it removed
 * (a command line with a secret in it), so it goes too; the next listing of every job makes another.
 */
export function forgetRecordCache(home: Home): void {
  try {
    writeFileAtomic(forgetMarkPath(home), '');
  } catch {} // a full disk: the cache still goes below; only a listing running now may keep a copy
  unlinkQuietly(recordCachePath(home));
  removeKilledWritersTemps(home);
  loaded = null;
}

const forgetMarkPath = (home: Home) => join(home.run, 'records.forgotten');

/** What lstat says of the mark each bgmon-rm replaces (a new inode each time); '' when there is none. */
function forgetMark(home: Home): string {
  try {
    const st = lstatSync(forgetMarkPath(home), { throwIfNoEntry: false });
    return st ? `${st.ino} ${st.mtimeMs} ${st.ctimeMs}` : '';
  } catch {
    return '?'; // run/ cannot be searched: no cache can be written there either
  }
}

const TEMP = /^\.records\.(?:cache|forgotten)\.(\d+)\.\d+\.tmp$/;

/** A listing killed while it wrote the cache left its temp file (megabytes): gone once its pid is. */
function removeKilledWritersTemps(home: Home): void {
  let entries: string[];
  try {
    entries = readdirSync(home.run);
  } catch {
    return;
  }
  for (const entry of entries) {
    const pid = TEMP.exec(entry)?.[1];
    if (pid !== undefined && readStat(Number(pid)) === null) unlinkQuietly(join(home.run, entry));
  }
}

/**
 * What lstat says of a file; undefined when it says nothing (gone, or an error such as EACCES
 * from a folder that cannot be searched): the file is then read as without a cache, which
 * returns null or reports it corrupt exactly as a listing without the cache does.
 */
function lstatQuietly(file: string): Stats | undefined {
  try {
    return lstatSync(file);
  } catch {
    return undefined;
  }
}

/** Entry i's key is exactly what lstat says of a regular file of one name. */
function isTrueOf(st: Stats | undefined, keys: Float64Array, i: number): boolean {
  const k = i * 4;
  return (
    st?.isFile() === true &&
    st.nlink === 1 &&
    keys[k] === st.ino &&
    keys[k + 1] === st.size &&
    keys[k + 2] === st.mtimeMs &&
    keys[k + 3] === st.ctimeMs
  );
}

/** A cached text as a record; null when it is not a valid one (a hand-made cache): the file is read instead. */
function parseCached(file: string, name: string, text: string): JobRecord | null {
  try {
    return parseRecord(file, name, text);
  } catch {
    return null;
  }
}

function encodeCache({ names, keys, texts }: Cache): Buffer {
  const head = Buffer.alloc(KEYS_AT);
  head.write(MAGIC, 0, 'latin1');
  head.writeDoubleLE(names.length, MAGIC.length);
  const keyBytes = Buffer.from(keys.buffer, keys.byteOffset, keys.byteLength);
  const lines = Buffer.from(names.map((name, i) => `${name}\t${texts[i]}`).join(''));
  return Buffer.concat([head, keyBytes, lines]);
}

/** The cache at path; NO_CACHE when there is none or it is not whole. */
function readCache(path: string): Cache {
  let opened: ReturnType<typeof openOwnFileStat>;
  try {
    opened = openOwnFileStat(path);
  } catch {
    return NO_CACHE; // none yet, or a planted link
  }
  const { fd, st } = opened;
  try {
    if (st.size < KEYS_AT || st.size > MAX_CACHE_BYTES) return NO_CACHE;
    // a buffer of its own, at offset 0: the keys are read in place as float64s
    const buf = Buffer.from(new ArrayBuffer(st.size));
    let off = 0;
    for (let n; off < buf.length && (n = readSync(fd, buf, off, buf.length - off, off)) > 0; ) off += n;
    return decodeCache(buf.subarray(0, off));
  } catch {
    return NO_CACHE;
  } finally {
    closeSync(fd);
  }
}

function decodeCache(buf: Buffer): Cache {
  if (buf.length < KEYS_AT || buf.toString('latin1', 0, MAGIC.length) !== MAGIC) return NO_CACHE;
  const count = buf.readDoubleLE(MAGIC.length);
  const textAt = KEYS_AT + count * 32;
  if (!Number.isSafeInteger(count) || count < 0 || textAt > buf.length) return NO_CACHE;
  const keys = new Float64Array(buf.buffer, buf.byteOffset + KEYS_AT, count * 4);
  const lines = buf.subarray(textAt);
  // ASCII (as records nearly always are) is copied as is, not decoded
  const text = lines.toString(isAscii(lines) ? 'latin1' : 'utf8');
  const names: string[] = [];
  const index = new Map<string, number>();
  const texts: string[] = [];
  for (let pos = 0; pos < text.length; ) {
    const nl = text.indexOf('\n', pos);
    const tab = text.indexOf('\t', pos);
    if (nl < 0 || tab <= pos || tab > nl) return NO_CACHE;
    const name = text.slice(pos, tab);
    index.set(name, names.length);
    names.push(name);
    texts.push(text.slice(tab + 1, nl + 1));
    pos = nl + 1;
  }
  return texts.length === count && index.size === count ? { names, index, keys, texts } : NO_CACHE;
}
