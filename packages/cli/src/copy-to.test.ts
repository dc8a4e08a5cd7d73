import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterFolder, copyToClusters, COPY_MARKER } from './copy-to.js';
import { CancelledError } from '@cvc/core';
import { OutputError } from './errors.js';

async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(join(e.parentPath, e.name).slice(dir.length + 1));
  return out.sort();
}

async function photos(): Promise<{ dir: string; src: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-copy-to-'));
  const src = join(dir, 'photos');
  await mkdir(join(src, 'cat'), { recursive: true });
  await mkdir(join(src, 'dog'), { recursive: true });
  await writeFile(join(src, 'cat', '1.png'), 'cat1');
  await writeFile(join(src, 'dog', '1.png'), 'dog1');
  await writeFile(join(src, 'dog', '2.png'), 'dog2');
  return { dir, src };
}

const placed = (src: string, clusters: number[]) =>
  ['cat/1.png', 'dog/1.png', 'dog/2.png'].map((p, i) => ({ cluster: clusters[i] as number, dest: p, file: join(src, p) }));

test('clusterFolder pads to two digits, wider for more clusters', () => {
  assert.equal(clusterFolder(3, 10), 'cluster-03');
  assert.equal(clusterFolder(7, 120), 'cluster-007');
});

test('copyToClusters: one folder per cluster, every image once, the originals untouched', async () => {
  const { dir, src } = await photos();
  try {
    const out = join(dir, 'out');
    const r = await copyToClusters(placed(src, [1, 0, 1]), 2, out, { sourceRoot: src });
    assert.equal(r.linked + r.copied, 3);
    assert.deepEqual(await tree(out), [COPY_MARKER, 'cluster-00/dog/1.png', 'cluster-01/cat/1.png', 'cluster-01/dog/2.png'].sort());
    assert.equal(await readFile(join(out, 'cluster-01/cat/1.png'), 'utf8'), 'cat1');
    assert.deepEqual(await tree(src), ['cat/1.png', 'dog/1.png', 'dog/2.png']);
    assert.ok((await stat(join(src, 'dog/1.png'))).isFile());
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('copyToClusters refuses a non-empty target without --force, a target inside the images, and never overwrites a user file', async () => {
  const { dir, src } = await photos();
  try {
    const out = join(dir, 'out');
    await mkdir(join(out, 'cluster-00', 'dog'), { recursive: true });
    await writeFile(join(out, 'cluster-00', 'dog', '1.png'), 'mine');
    await assert.rejects(copyToClusters(placed(src, [1, 0, 1]), 2, out), (e: unknown) => e instanceof OutputError && e.code === 'TARGET_NOT_EMPTY');
    await assert.rejects(
      copyToClusters(placed(src, [1, 0, 1]), 2, out, { force: true }),
      (e: unknown) => e instanceof OutputError && e.code === 'DEST_EXISTS' && /cluster-00\/dog\/1\.png exists/.test(e.message),
    );
    assert.equal(await readFile(join(out, 'cluster-00', 'dog', '1.png'), 'utf8'), 'mine');
    assert.deepEqual(await tree(out), ['cluster-00/dog/1.png'], 'nothing written when a destination is taken');
    await assert.rejects(
      copyToClusters(placed(src, [0, 0, 0]), 2, join(src, 'clusters'), { sourceRoot: src }),
      (e: unknown) => e instanceof OutputError && e.code === 'TARGET_INSIDE_SOURCE',
    );
    await assert.rejects(
      copyToClusters([{ cluster: 0, dest: '../escape.png', file: join(src, 'cat/1.png') }], 2, join(dir, 'o2')),
      (e: unknown) => e instanceof OutputError && e.code === 'BAD_PATH',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('copyToClusters --force replaces only what it wrote before: a new clustering leaves no stale image', async () => {
  const { dir, src } = await photos();
  try {
    const out = join(dir, 'out');
    await copyToClusters(placed(src, [0, 1, 2]), 3, out);
    await writeFile(join(out, 'notes.txt'), 'user file');
    await copyToClusters(placed(src, [1, 1, 0]), 2, out, { force: true });
    assert.deepEqual(await tree(out), [COPY_MARKER, 'cluster-00/dog/2.png', 'cluster-01/cat/1.png', 'cluster-01/dog/1.png', 'notes.txt'].sort());
    assert.equal(await readFile(join(out, 'notes.txt'), 'utf8'), 'user file');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('copyToClusters writes records without a source file as PNG', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-copy-to-'));
  try {
    const r = await copyToClusters([{ cluster: 1, dest: 'test/00004.png', png: () => Uint8Array.from([1, 2, 3]) }], 2, join(dir, 'o'));
    assert.equal(r.written, 1);
    assert.deepEqual([...(await readFile(join(dir, 'o', 'cluster-01', 'test', '00004.png')))], [1, 2, 3]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('copyToClusters lists every file in the marker before placing any, stops on an abort, and then lists what it placed', async () => {
  const { dir, src } = await photos();
  try {
    const out = join(dir, 'out');
    const ac = new AbortController();
    const listedMidway: string[][] = [];
    await assert.rejects(
      copyToClusters(placed(src, [0, 1, 1]), 2, out, {
        signal: ac.signal,
        onImage: (done) => {
          if (done === 1) {
            // What a run killed here (a second Ctrl-C) would leave behind.
            listedMidway.push((JSON.parse(readFileSync(join(out, COPY_MARKER), 'utf8')) as { files: string[] }).files);
            ac.abort();
          }
        },
      }),
      (err: unknown) => err instanceof CancelledError,
    );
    assert.deepEqual(listedMidway[0]?.sort(), ['cluster-00/cat/1.png', 'cluster-01/dog/1.png', 'cluster-01/dog/2.png']);
    assert.deepEqual(await tree(out), [COPY_MARKER, 'cluster-00/cat/1.png']);
    assert.deepEqual((JSON.parse(await readFile(join(out, COPY_MARKER), 'utf8')) as { files: string[] }).files, ['cluster-00/cat/1.png']);
    // --force takes over from there.
    await copyToClusters(placed(src, [0, 1, 1]), 2, out, { force: true });
    assert.deepEqual(await tree(out), [COPY_MARKER, 'cluster-00/cat/1.png', 'cluster-01/dog/1.png', 'cluster-01/dog/2.png']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
