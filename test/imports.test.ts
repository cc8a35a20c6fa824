// Issue 10: no import cycle in packages/, and no module of bgmon-state imports the CLI layer.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers';

const IMPORT =
  /(?:import|export)\s+(?!type\b)[^'"]*?from\s+'(\.{1,2}\/[^']+)'|(?:import|require)\(\s*'(\.{1,2}\/[^']+)'\s*\)/g;

/** Every .ts file under dir, and the relative modules each imports at run time (type-only imports erase). */
function importGraph(dir: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const walk = (sub: string) => {
    for (const entry of readdirSync(join(dir, sub), { withFileTypes: true })) {
      const rel = join(sub, entry.name);
      if (entry.isDirectory()) walk(rel);
      else if (entry.name.endsWith('.ts')) {
        const text = readFileSync(join(dir, rel), 'utf8');
        const deps = [...text.matchAll(IMPORT)].map((m) => join(sub, (m[1] ?? m[2]) + '.ts'));
        graph.set(rel, deps);
      }
    }
  };
  walk('');
  return graph;
}

function cycles(graph: Map<string, string[]>): string[] {
  const found: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  for (const root of graph.keys()) {
    if (state.has(root)) continue;
    // iterative depth-first search: [module, index of the next dependency]
    const stack: [string, number][] = [[root, 0]];
    state.set(root, 'open');
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const deps = graph.get(top[0]) ?? [];
      if (top[1] >= deps.length) {
        state.set(top[0], 'done');
        stack.pop();
        continue;
      }
      const next = deps[top[1]++];
      if (state.get(next) === 'open') {
        const path = stack.map(([m]) => m);
        found.push([...path.slice(path.indexOf(next)), next].join(' -> '));
      } else if (!state.has(next) && graph.has(next)) {
        state.set(next, 'open');
        stack.push([next, 0]);
      }
    }
  }
  return found;
}

test('no import cycle in any package', () => {
  for (const pkg of readdirSync(join(ROOT, 'packages'))) {
    const src = join(ROOT, 'packages', pkg, 'src');
    let graph: Map<string, string[]>;
    try {
      graph = importGraph(src);
    } catch {
      continue; // no sources
    }
    assert.equal(cycles(graph), [], pkg);
  }
});

test('the cycle finder finds a cycle (so the test above can fail)', () => {
  const graph = new Map([
    ['a.ts', ['b.ts']],
    ['b.ts', ['c.ts']],
    ['c.ts', ['a.ts']],
    ['d.ts', ['a.ts']],
  ]);
  assert.equal(cycles(graph), ['a.ts -> b.ts -> c.ts -> a.ts']);
});

// The CLI layer: argument parsing, help, running a command on other hosts. The library under it
// (state, records, /proc, queue, stop, tail...) must not reach up into it.
const CLI_LAYER = new Set(['cli.ts', 'cli-api.ts', 'usage.ts', 'hosts.ts', 'index.ts']);

test('no library module of bgmon-state imports the CLI layer', () => {
  const graph = importGraph(join(ROOT, 'packages', 'bgmon-state', 'src'));
  const importers = [...graph].filter(([file, deps]) => !CLI_LAYER.has(file) && deps.some((d) => CLI_LAYER.has(d)));
  assert.equal(
    importers.map(([file]) => file),
    [],
  );
});

test.run();
