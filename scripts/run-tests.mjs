#!/usr/bin/env node
// Runs the compiled tests with node's built-in runner:
//   unit tests beside the code (packages/*/dist/**/*.test.js, services/*/dist/**/*.test.js) and
//   end-to-end tests (test/dist/e2e/**/*.test.js).
// Flags: --unit, --e2e (only that group); anything else is passed to node --test.
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const only = args.includes('--unit') ? 'unit' : args.includes('--e2e') ? 'e2e' : 'all';
const passThrough = args.filter((a) => a !== '--unit' && a !== '--e2e');

function find(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) find(p, out);
    else if (name.endsWith('.test.js')) out.push(relative(root, p));
  }
  return out;
}

const files = [];
if (only !== 'e2e')
  for (const group of ['packages', 'services']) for (const pkg of readdirSync(join(root, group))) files.push(...find(join(root, group, pkg, 'dist')));
if (only !== 'unit') files.push(...find(join(root, 'test', 'dist', 'e2e')));
if (files.length === 0) {
  console.error('no compiled tests found: run `npm run build` first');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...passThrough, ...files.sort()], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
