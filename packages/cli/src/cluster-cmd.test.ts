import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, link, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PNG } from 'pngjs';
import { type ImageSet } from '@cvc/data';
import { randomImageSet, writeIdxDataset } from '@cvc/data/testing';
import { main } from './index.js';
import { captureEnv } from './testing.js';
import { writeTinyEncoder } from './encoder-fixture.js';

function png(set: ImageSet, i: number): Buffer {
  const p = new PNG({ width: set.width, height: set.height });
  const per = set.width * set.height;
  for (let j = 0; j < per; j++) {
    const v = set.images[i * per + j] as number;
    p.data.set([v, v, v, 255], j * 4);
  }
  return PNG.sync.write(p);
}

/** Every file under `dir`, relative, sorted. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(join(e.parentPath, e.name).slice(dir.length + 1));
  return out.sort();
}

/** Parses assignments.csv (no quoted fields in these tests). */
const rowsOf = (csv: string): string[][] =>
  csv
    .trim()
    .split('\n')
    .map((l) => l.split(','));

test('cluster --dataset: assignments.csv with split:index paths, --copy-to writes each record once as PNG, a second run needs --force', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-cluster-cmd-'));
  try {
    const data = join(dir, 'data');
    await writeIdxDataset(data, randomImageSet(20, 8, 8, 1, 1, 3), randomImageSet(15, 8, 8, 1, 2, 3));
    await writeTinyEncoder(join(dir, 'enc'), [8, 8, 1]);
    const args = [
      'cluster',
      '--encoder',
      join(dir, 'enc'),
      '--dataset',
      data,
      '--k',
      '3',
      '--n-init',
      '2',
      '--out',
      join(dir, 'out'),
      '--copy-to',
      join(dir, 'by-cluster'),
    ];
    const env = captureEnv(join(dir, 'cache'));
    assert.equal(await main(args, env), 0, env.err());
    assert.match(env.out(), /assignments of 15 images written to .*assignments\.csv/);
    const rows = rowsOf(await readFile(join(dir, 'out', 'assignments.csv'), 'utf8'));
    assert.deepEqual(rows[0], ['path', 'cluster', 'distance', 'label', 'class']);
    assert.equal(rows.length, 16);
    assert.deepEqual(
      rows.slice(1).map((r) => r[0]),
      Array.from({ length: 15 }, (_, i) => `test:${i}`),
    );
    for (const r of rows.slice(1)) {
      assert.ok(Number(r[1]) >= 0 && Number(r[1]) < 3 && Number(r[2]) >= 0, r.join(','));
      assert.equal(r[4], r[3], 'a path dataset names its classes by number');
    }
    const files = (await tree(join(dir, 'by-cluster'))).filter((f) => f.endsWith('.png'));
    assert.deepEqual(
      files,
      rows
        .slice(1)
        .map((r) => `cluster-0${r[1]}/test/${(r[0] as string).slice(5).padStart(5, '0')}.png`)
        .sort(),
    );
    const first = PNG.sync.read(await readFile(join(dir, 'by-cluster', files[0] as string)));
    assert.equal(first.width, 8);

    // The same split imported with --out DIR (shards + manifest) clusters the same records, by their source index.
    const shards = join(dir, 'shards');
    assert.equal(await main(['dataset', 'import', data, '--folds', '2', '--out', shards], captureEnv(join(dir, 'cache'))), 0);
    const imp = captureEnv(join(dir, 'cache'));
    assert.equal(await main(['cluster', '--encoder', join(dir, 'enc'), '--dataset', shards, '--k', '3', '--out', join(dir, 'out-imp')], imp), 0, imp.err());
    const impRows = rowsOf(await readFile(join(dir, 'out-imp', 'assignments.csv'), 'utf8'));
    assert.deepEqual(
      impRows
        .slice(1)
        .map((r) => r[0])
        .sort(),
      rows
        .slice(1)
        .map((r) => r[0])
        .sort(),
    );

    const again = captureEnv(join(dir, 'cache'));
    assert.equal(await main(args, again), 1);
    assert.match(again.err(), /by-cluster is not empty; .* --force/);
    assert.equal(await main([...args, '--force', '--k', '2'], captureEnv(join(dir, 'cache'))), 0);
    assert.equal((await tree(join(dir, 'by-cluster'))).filter((f) => f.endsWith('.png')).length, 15, 'the earlier clustering left nothing behind');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('cluster --images: class folders give labels, bad files fail naming them or are skipped with --skip-invalid, --copy-to links the files', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-cluster-images-'));
  try {
    const photos = join(dir, 'photos');
    const set = randomImageSet(12, 10, 10, 1, 3, 2);
    const want: string[] = [];
    for (let i = 0; i < set.count; i++) {
      const cls = set.labels[i] === 0 ? 'cats' : 'dogs';
      await mkdir(join(photos, cls), { recursive: true });
      await writeFile(join(photos, cls, `img,${i}.png`), png(set, i));
      want.push(`${cls}/img,${i}.png`);
    }
    await writeFile(join(photos, 'cats', 'broken.png'), png(set, 0).subarray(0, 40));
    await writeFile(join(photos, 'notes.txt'), 'not an image');
    await writeTinyEncoder(join(dir, 'enc'), [8, 8, 1]);
    const base = ['cluster', '--encoder', join(dir, 'enc'), '--images', photos, '--k', '2', '--n-init', '2', '--out', join(dir, 'out')];

    const strict = captureEnv(dir);
    assert.equal(await main(base, strict), 1);
    assert.match(strict.err(), /1 invalid file\(s\) in .*photos, nothing written \(--skip-invalid skips them\):\n  cats\/broken\.png: .* \[IMAGE_/);
    assert.equal(await stat(join(dir, 'out')).catch(() => undefined), undefined, 'no output without --skip-invalid');

    const env = captureEnv(dir);
    assert.equal(await main([...base, '--skip-invalid', '--copy-to', join(dir, 'sorted'), '--json'], env), 0, env.err());
    assert.match(env.err(), /skipped cats\/broken\.png: /);
    // The RGBA files under a greyscale encoder: said once on stderr, not in the --json of stdout.
    assert.equal(env.err().split('the images are colour (RGB); the encoder takes 1 channel: each image is converted to greyscale').length, 2, env.err());
    const summary = JSON.parse(env.out()) as {
      images: number;
      skipped: { path: string }[];
      ignored: { notImage: number };
      results: Record<string, { accuracy: number }>;
    };
    assert.equal(summary.images, 12);
    assert.deepEqual(
      summary.skipped.map((s) => s.path),
      ['cats/broken.png'],
    );
    assert.equal(summary.ignored.notImage, 1);
    assert.ok(summary.results['encoder+kmeans'], 'class folders are scored');
    const csv = await readFile(join(dir, 'out', 'assignments.csv'), 'utf8');
    const lines = csv.trim().split('\n');
    assert.equal(lines.length, 13);
    // Paths with a comma are quoted; each row names its class folder.
    for (const l of lines.slice(1)) assert.match(l, /^"(cats|dogs)\/img,\d+\.png",[01],[\d.e-]+,[01],(cats|dogs)$/);
    const paths = lines.slice(1).map((l) => (/^"([^"]+)"/.exec(l) as RegExpExecArray)[1] as string);
    assert.deepEqual([...paths].sort(), [...want].sort());
    const placed = (await tree(join(dir, 'sorted'))).filter((f) => f.startsWith('cluster-'));
    assert.deepEqual(placed.map((f) => f.slice('cluster-00/'.length)).sort(), [...want].sort(), 'every valid image exactly once');
    // Hard links on one file system: the same inode, the original still in place.
    const [one] = placed as [string];
    const rel = one.slice('cluster-00/'.length);
    assert.equal((await stat(join(dir, 'sorted', one))).ino, (await stat(join(photos, rel))).ino);
    assert.ok((await stat(join(photos, rel))).isFile());

    // embed --images: the codes with each file's path (CSV), or beside the .npy in FILE.paths.csv.
    const emb = captureEnv(dir);
    assert.equal(
      await main(['embed', '--encoder', join(dir, 'enc'), '--images', photos, '--skip-invalid', '--out', join(dir, 'codes.csv')], emb),
      0,
      emb.err(),
    );
    assert.match(emb.out(), /12 codes of size 3 written to .*codes\.csv \(1 skipped\)/);
    const codeLines = (await readFile(join(dir, 'codes.csv'), 'utf8')).trim().split('\n');
    assert.equal(codeLines[0], 'path,code0,code1,code2,label,class');
    assert.equal(codeLines.length, 13);
    assert.match(codeLines[1] as string, /^"cats\/img,\d+\.png",(-?[\d.e+-]+,){3}0,cats$/);
    assert.equal(
      await main(['embed', '--encoder', join(dir, 'enc'), '--images', photos, '--skip-invalid', '--out', join(dir, 'codes.npy')], captureEnv(dir)),
      0,
    );
    const pathsCsv = (await readFile(join(dir, 'codes.paths.csv'), 'utf8')).trim().split('\n');
    assert.deepEqual(pathsCsv.slice(0, 1), ['path,label,class']);
    assert.deepEqual(
      pathsCsv.slice(1).map((l) => l.replace(/,[01],(cats|dogs)$/, '')),
      codeLines.slice(1).map((l) => (/^("[^"]+")/.exec(l) as RegExpExecArray)[1]),
    );

    // An encoder whose weights are NaN: embed stops naming the file whose code is NaN, and writes nothing.
    await mkdir(join(dir, 'nan-enc'));
    await copyFile(join(dir, 'enc', 'model.json'), join(dir, 'nan-enc', 'model.json'));
    const w = await readFile(join(dir, 'enc', 'weights.bin'));
    await writeFile(join(dir, 'nan-enc', 'weights.bin'), Buffer.from(new Float32Array(w.length / 4).fill(NaN).buffer));
    const nanEnv = captureEnv(dir);
    assert.equal(await main(['embed', '--encoder', join(dir, 'nan-enc'), '--images', photos, '--skip-invalid', '--out', join(dir, 'nan.csv')], nanEnv), 1);
    assert.match(nanEnv.err(), /gave NaN for image 0 \((cats|dogs)\/img,\d+\.png\), code dimension 0 of 3/);
    assert.equal(existsSync(join(dir, 'nan.csv')), false);

    // An unlabelled (flat) folder: no scores, empty label and class columns.
    const flat = join(dir, 'flat');
    await mkdir(flat);
    for (let i = 0; i < 4; i++) await link(join(photos, want[i] as string), join(flat, `${i}.png`));
    const f = captureEnv(dir);
    assert.equal(await main(['cluster', '--encoder', join(dir, 'enc'), '--images', flat, '--k', '2', '--out', join(dir, 'out-flat')], f), 0, f.err());
    assert.match(f.out(), /no class folders: no accuracy to score/);
    assert.match(await readFile(join(dir, 'out-flat', 'assignments.csv'), 'utf8'), /^path,cluster,distance,label,class\n0\.png,[01],[\d.e-]+,,\n/);

    const usage = captureEnv(dir);
    assert.equal(await main([...base, '--dataset', 'mnist'], usage), 2);
    assert.match(usage.err(), /--dataset mnist and --images .* exclude each other/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('embed --images: greyscale files under an RGB encoder are converted, said once on stderr naming how many', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-embed-grey-'));
  try {
    const set = randomImageSet(3, 8, 8, 1, 4, 1);
    await mkdir(join(dir, 'grey'));
    for (let i = 0; i < set.count; i++) await writeFile(join(dir, 'grey', `${i}.png`), PNG.sync.write(PNG.sync.read(png(set, i)), { colorType: 0 }));
    await writeFile(join(dir, 'grey', 'c.png'), png(set, 0));
    await writeTinyEncoder(join(dir, 'enc'), [8, 8, 3]);
    const e = captureEnv(dir);
    assert.equal(await main(['embed', '--encoder', join(dir, 'enc'), '--images', join(dir, 'grey'), '--out', join(dir, 'c.csv')], e), 0, e.err());
    assert.match(e.err(), /3 of the 4 images are greyscale; the encoder takes 3 channels: each image's grey value is repeated in R, G and B/);
    assert.doesNotMatch(e.out(), /greyscale/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('cluster --manifold umap --assign gmm: UMAP + a Gaussian mixture on the codes and (--baseline) on the pixels, reproducible from --seed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-cluster-umap-'));
  try {
    const data = join(dir, 'data');
    await writeIdxDataset(data, randomImageSet(20, 8, 8, 1, 1, 3), randomImageSet(60, 8, 8, 1, 2, 3));
    await writeTinyEncoder(join(dir, 'enc'), [8, 8, 1]);
    const base = ['cluster', '--encoder', join(dir, 'enc'), '--dataset', data, '--k', '3', '--n-init', '2', '--manifold', 'umap', '--umap-dims', '2'];
    const args = (out: string, seed: string): string[] => [
      ...base,
      '--neighbors',
      '5',
      '--umap-sample',
      '40',
      '--assign',
      'gmm',
      '--baseline',
      '--json',
      '--seed',
      seed,
      '--out',
      join(dir, out),
    ];
    const env = captureEnv(join(dir, 'cache'));
    assert.equal(await main(args('a', '1'), env), 0, env.err());
    const json = JSON.parse(env.out()) as { method: string; results: Record<string, { accuracy: number }> };
    assert.equal(json.method, 'encoder+umap+gmm');
    assert.deepEqual(Object.keys(json.results).sort(), ['encoder+kmeans', 'encoder+umap+gmm', 'pixels+kmeans', 'pixels+umap+gmm']);
    const csv = await readFile(join(dir, 'a', 'assignments.csv'), 'utf8');
    const rows = rowsOf(csv);
    assert.deepEqual(rows[0], ['path', 'cluster', 'confidence', 'label', 'class']);
    assert.equal(rows.length, 61);
    for (const r of rows.slice(1)) assert.ok(Number(r[2]) > 0 && Number(r[2]) <= 1 + 1e-9, r.join(','));
    assert.equal(await main(args('b', '1'), captureEnv(join(dir, 'cache'))), 0);
    assert.equal(await readFile(join(dir, 'b', 'assignments.csv'), 'utf8'), csv, 'the same seed gives the same assignments');
    assert.equal(await main(args('c', '2'), captureEnv(join(dir, 'cache'))), 0);
    assert.notEqual(await readFile(join(dir, 'c', 'assignments.csv'), 'utf8'), csv, 'another seed gives other confidences');

    // Bad values name the flag, also --neighbors above the images (the library's typed error, said with the flags).
    const bad = async (extra: string[], re: RegExp, code: number): Promise<void> => {
      const e = captureEnv(join(dir, 'cache'));
      assert.equal(await main([...base, ...extra, '--out', join(dir, 'bad')], e), code, e.err());
      assert.match(e.err(), re);
    };
    await bad(['--umap-dims', '0'], /--umap-dims must be >= 1, got '0'/, 2);
    await bad(
      ['--neighbors', '80'],
      /cvc: --neighbors 80: UMAP needs more fitted points than neighbours, got 60 points \(the images\); give --neighbors 59 or lower\n/,
      2,
    );
    await bad(
      ['--neighbors', '50', '--umap-sample', '30'],
      /--neighbors 50: .* got the --umap-sample of 30; give --neighbors 29 or lower, or a larger --umap-sample/,
      2,
    );
    await bad(['--min-dist', '-1'], /--min-dist must be in 0\.\.1/, 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('cluster --umap-context N: UMAP also sees N images of the other split; only the clustered split is written', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-cluster-ctx-'));
  try {
    const data = join(dir, 'data');
    await writeIdxDataset(data, randomImageSet(30, 8, 8, 1, 1, 3), randomImageSet(40, 8, 8, 1, 2, 3));
    await writeTinyEncoder(join(dir, 'enc'), [8, 8, 1]);
    const args = (out: string, extra: string[]): string[] => [
      'cluster',
      '--encoder',
      join(dir, 'enc'),
      '--dataset',
      data,
      '--k',
      '3',
      '--n-init',
      '2',
      '--manifold',
      'umap',
      '--umap-dims',
      '2',
      '--neighbors',
      '5',
      '--baseline',
      '--json',
      '--out',
      join(dir, out),
      ...extra,
    ];
    const env = captureEnv(join(dir, 'cache'));
    assert.equal(await main(args('a', ['--umap-context', '20']), env), 0, env.err());
    const json = JSON.parse(env.out()) as { images: number; umapContext?: number; results: Record<string, unknown> };
    assert.equal(json.images, 40);
    assert.equal(json.umapContext, 20);
    assert.deepEqual(Object.keys(json.results).sort(), ['encoder+kmeans', 'encoder+umap+kmeans', 'pixels+kmeans', 'pixels+umap+kmeans']);
    const rows = rowsOf(await readFile(join(dir, 'a', 'assignments.csv'), 'utf8'));
    assert.equal(rows.length, 41);
    for (const r of rows.slice(1)) assert.match(r[0] as string, /^test:\d+$/);
    const plain = captureEnv(join(dir, 'cache'));
    assert.equal(await main(args('b', []), plain), 0, plain.err());
    assert.equal((JSON.parse(plain.out()) as { umapContext?: number }).umapContext, undefined);
    assert.notEqual(await readFile(join(dir, 'b', 'assignments.csv'), 'utf8'), await readFile(join(dir, 'a', 'assignments.csv'), 'utf8'));
    const e = captureEnv(join(dir, 'cache'));
    assert.equal(await main(['cluster', '--encoder', join(dir, 'enc'), '--images', dir, '--manifold', 'umap', '--umap-context', '5'], e), 2);
    assert.match(e.err(), /--umap-context takes its images from the other split of --dataset/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('cluster --dec is gone: the message names --dec-centres and cvc cluster-job submit; UMAP flags need --manifold umap', async () => {
  const env = captureEnv(tmpdir());
  assert.equal(await main(['cluster', '--encoder', 'x', '--dataset', 'y', '--dec'], env), 2);
  assert.match(env.err(), /--dec is gone.*--dec-centres .*centres.*the encoder is not fine-tuned.*cvc cluster-job submit RUN --method dec\|idec\|dcec/);
  const e2 = captureEnv(tmpdir());
  assert.equal(await main(['cluster', '--encoder', 'x', '--dataset', 'y', '--neighbors', '5'], e2), 2);
  assert.match(e2.err(), /--neighbors applies to --manifold umap/);
  const e3 = captureEnv(tmpdir());
  assert.equal(await main(['cluster', '--encoder', 'x', '--dataset', 'y', '--assign', 'gmm', '--dec-centres'], e3), 2);
  assert.match(e3.err(), /--dec-centres .* does not combine with --assign gmm/);
});

test('Ctrl-C during a long k-means (cluster --n-init 1000000) stops it between restarts: exit 130, says what was cancelled, writes no assignments', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-cluster-sigint-'));
  let child: ReturnType<typeof spawn> | undefined;
  try {
    const data = join(dir, 'data');
    await writeIdxDataset(data, randomImageSet(20, 8, 8, 1, 1, 3), randomImageSet(300, 8, 8, 1, 2, 3));
    await writeTinyEncoder(join(dir, 'enc'), [8, 8, 1]);
    const bin = fileURLToPath(new URL('../bin/cvc.js', import.meta.url));
    const args = ['cluster', '--encoder', join(dir, 'enc'), '--dataset', data, '--k', '3', '--n-init', '1000000', '--baseline', '--out', join(dir, 'out')];
    const p = (child = spawn(process.execPath, [bin, ...args], {
      env: { ...process.env, CVC_CACHE_DIR: join(dir, 'cache') },
      stdio: ['ignore', 'pipe', 'pipe'],
    }));
    let err = '';
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    p.stdout.resume();
    const exit = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
    // A million restarts would take minutes: the progress line says k-means has started.
    for (const end = Date.now() + 60_000; !/encoder: k-means restarts/.test(err);) {
      if (Date.now() > end) throw new Error(`k-means never started: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    p.kill('SIGINT');
    assert.equal(await exit, 130, err);
    assert.match(err, /k-means was cancelled/);
    await assert.rejects(stat(join(dir, 'out', 'assignments.csv')), 'no assignments written');
  } finally {
    if (child?.exitCode === null) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
});
