import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deployDir, repoRoot } from './kustomize-build.js';

/**
 * Docker's .dockerignore rules (moby/patternmatcher): patterns relative to the context root, `*` and `?`
 * within one path segment, `**` across segments, `!` re-includes, the last matching pattern wins, and a
 * pattern that matches a directory excludes everything under it.
 */
function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const p = (negate ? l.slice(1) : l).replace(/^\/+/, '').replace(/\/+$/, '');
      let re = '';
      for (let i = 0; i < p.length; i++) {
        const ch = p[i] ?? '';
        if (ch === '*' && p[i + 1] === '*') {
          i++;
          if (p[i + 1] === '/') {
            i++;
            re += '(?:.*/)?';
          } else re += '.*';
        } else if (ch === '*') re += '[^/]*';
        else if (ch === '?') re += '[^/]';
        else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      return { negate, re: new RegExp(`^${re}(?:/.*)?$`) };
    });
  return (path) => {
    let excluded = false;
    for (const r of rules) if (r.re.test(path)) excluded = !r.negate;
    return excluded;
  };
}

test('the Docker build context has every tracked file and none of the local secrets, data or build outputs', () => {
  const excluded = dockerignore(readFileSync(join(repoRoot, '.dockerignore'), 'utf8'));
  const tracked = spawnSync('git', ['ls-files'], { cwd: repoRoot, encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  assert.ok(tracked.length > 100);
  // `COPY . .` then `npm ci` and `tsc -b`: the sources, the lock file, every workspace and the wasm kernels.
  assert.deepEqual(
    tracked.filter((f) => excluded(f)),
    [],
    'tracked files left out of the image build',
  );
  for (const need of ['package-lock.json', 'packages/tfjs-runtime/wasm/cvc-conv-simd.wasm', 'services/worker/bin/worker.js'])
    assert.ok(tracked.includes(need), need);
  // What `cvc secrets init --out DIR` writes where the README runs it, and what the local cluster and the CLI write.
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const outs = [...readme.matchAll(/cvc secrets init --out ([a-z0-9._-]+)\/?[`\s]/g)].map((m) => m[1] ?? '');
  assert.ok(outs.length > 0, 'README runs cvc secrets init');
  const local = [
    ...outs.flatMap((d) => [`${d}/auth.env`, `${d}/server-key.pem`, `${d}/client-key.pem`, `${d}/ca.pem`]),
    '.cvc/local/secrets/tokens.json',
    '.cvc/local/cluster.json',
    'encoders/run-1/model.json',
    'reports/run-1/loss.png',
    'runs/run-1/summary.json',
    'out/x.json',
    'node_modules/zod/package.json',
    'packages/core/node_modules/x/index.js',
    'packages/core/dist/index.js',
    'npm-debug.log',
  ];
  assert.deepEqual(
    local.filter((f) => !excluded(f)),
    [],
    'local files that would be copied into the images',
  );
  // The same secrets are never committed either.
  for (const d of outs) {
    const r = spawnSync('git', ['check-ignore', '-q', `${d}/auth.env`], { cwd: repoRoot });
    assert.equal(r.status, 0, `${d}/ is git-ignored`);
  }
});

test('each worker image carries one native TensorFlow: the CPU image tfjs-node only, the GPU image tfjs-node-gpu only', () => {
  const cases = [
    { file: 'Dockerfile.worker-cpu', want: '@tensorflow/tfjs-node', other: '@tensorflow/tfjs-node-gpu' },
    { file: 'Dockerfile.worker-gpu', want: '@tensorflow/tfjs-node-gpu', other: '@tensorflow/tfjs-node' },
  ];
  for (const { file, want, other } of cases) {
    const text = readFileSync(join(deployDir, 'docker', file), 'utf8').replace(/\\\n/g, ' ');
    const build = text.slice(0, text.lastIndexOf('\nFROM '));
    const steps = [...build.matchAll(/^RUN (.*)$/gm)].flatMap((m) => (m[1] ?? '').split(/\s*&&\s*/));
    // Both packages are optional dependencies of @cvc/tfjs-runtime: `npm install` of one installs the other
    // too (and runs its install script, which downloads its libtensorflow) unless scripts are skipped.
    const install = steps.findIndex((s) => s.startsWith('npm install') && s.includes(`${want}@`));
    assert.ok(install >= 0, `${file} installs ${want}`);
    assert.match(steps[install] ?? '', /--ignore-scripts/, `${file}: the install runs no package's download`);
    const remove = steps.findIndex((s, i) => i > install && s.startsWith('rm -rf') && s.split(/\s+/).includes(`node_modules/${other}`));
    assert.ok(remove > install, `${file} removes ${other}`);
    // npm install, ci and prune would bring it back (prune adds missing optional dependencies, and runs their scripts).
    assert.deepEqual(
      steps.filter((s, i) => i > remove && /^npm (install|i|ci|prune|update)\b/.test(s)),
      [],
      `${file}: nothing reinstalls ${other} after its removal`,
    );
    const rebuild = steps.findIndex((s, i) => i > remove && s.trim() === `npm rebuild ${want}`);
    assert.ok(rebuild > remove, `${file} runs ${want}'s install script (npm rebuild), after the other is gone`);
    assert.ok(
      steps.some((s, i) => i > rebuild && s.trim() === `test ! -e node_modules/${other}`),
      `${file} checks ${other} is not in the image`,
    );
  }
});
