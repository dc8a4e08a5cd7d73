import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { link, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { downloadFiles, downloadDataset, loadDataset, DataError, DATASETS, type DatasetInfo } from './index.js';
import { encodeCifarBatch, encodeTar, randomImageSet } from './testing.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function serve(files: Record<string, Uint8Array>): Promise<{ server: Server; base: string; hits: string[] }> {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    const name = (req.url ?? '').replace(/^\/d\//, '');
    hits.push(name);
    const body = files[name];
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { server, base: `http://127.0.0.1:${port}/d/`, hits };
}

test('downloads are verified by sha256 and not fetched twice', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-dl-'));
  const a = new Uint8Array(70_000).map((_, i) => i % 251);
  const { server, base, hits } = await serve({ 'a.bin': a, 'bad.bin': new Uint8Array([1, 2, 3]) });
  try {
    const spec = [{ file: 'a.bin', bytes: a.length, sha256: sha(a) }];
    const [p] = await downloadFiles(spec, { dir, mirrors: ['http://127.0.0.1:1/nothing/', base] });
    assert.ok(Buffer.from(await readFile(p as string)).equals(a));
    await downloadFiles(spec, { dir, mirrors: [base] });
    assert.deepEqual(hits, ['a.bin'], 'second call uses the cached, verified file');

    await assert.rejects(
      downloadFiles([{ file: 'bad.bin', bytes: 3, sha256: '0'.repeat(64) }], { dir, mirrors: [base] }),
      (e: unknown) => e instanceof DataError && e.code === 'CHECKSUM_MISMATCH' && /discarded/.test(e.message),
    );
    await assert.rejects(stat(join(dir, 'bad.bin')), 'a file with the wrong hash is not kept');
    await assert.rejects(stat(join(dir, 'bad.bin.part')));
  } finally {
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('without a reachable mirror the error lists which files to place where', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-dl-'));
  try {
    const t0 = Date.now();
    await assert.rejects(downloadDataset('mnist', dir, { mirrors: ['http://127.0.0.1:1/'] }), (e: unknown) => {
      assert.ok(e instanceof DataError && e.code === 'DOWNLOAD_FAILED');
      for (const f of DATASETS['mnist']?.downloads ?? []) assert.ok(e.message.includes(join(dir, 'mnist', f.file)) && e.message.includes(f.sha256), e.message);
      return true;
    });
    assert.ok(Date.now() - t0 < 20_000, 'fails at once');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the CIFAR-10 archive path downloads, verifies and unpacks into loadable batches', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-dl-'));
  const batches = [1, 2, 3, 4, 5].map((i) => ({ name: `cifar-10-batches-bin/data_batch_${i}.bin`, data: encodeCifarBatch(randomImageSet(4, 32, 32, 3, i)) }));
  batches.push({ name: 'cifar-10-batches-bin/test_batch.bin', data: encodeCifarBatch(randomImageSet(3, 32, 32, 3, 9)) });
  const archive = new Uint8Array(gzipSync(encodeTar(batches)));
  const { server, base } = await serve({ 'cifar-10-binary.tar.gz': archive });
  try {
    const info: DatasetInfo = {
      ...(DATASETS['cifar-10'] as DatasetInfo),
      downloads: [{ file: 'cifar-10-binary.tar.gz', bytes: archive.length, sha256: sha(archive) }],
    };
    // A partial batch from an extraction cut short, and a second name (hard link) for its bytes.
    await mkdir(join(dir, 'cifar-10'));
    await writeFile(join(dir, 'cifar-10', 'data_batch_2.bin'), 'partial');
    await link(join(dir, 'cifar-10', 'data_batch_2.bin'), join(dir, 'old-batch-2'));
    const out = await downloadDataset('cifar-10', dir, { mirrors: [base], info });
    const ds = await loadDataset('cifar-10', { cacheDir: dir });
    assert.equal(ds.dir, out);
    assert.equal(ds.train.count, 20);
    assert.equal(ds.test.count, 3);
    // The batch was written aside and renamed over the old file (so a cut leaves the old file whole), never rewritten in place.
    assert.equal(await readFile(join(dir, 'old-batch-2'), 'utf8'), 'partial');
    assert.deepEqual(
      (await readdir(out)).filter((f) => f.endsWith('.part')),
      [],
    );
    // A batch that cannot be put in place (a directory in its way) fails, and leaves no .part file behind.
    await rm(join(out, 'test_batch.bin'));
    await mkdir(join(out, 'test_batch.bin', 'x'), { recursive: true });
    await assert.rejects(downloadDataset('cifar-10', dir, { mirrors: [base], info }));
    assert.deepEqual(
      (await readdir(out)).filter((f) => f.endsWith('.part')),
      [],
    );
  } finally {
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a download that takes longer than timeoutMs in all but keeps sending is not cut off; a stalled one is, and leaves no .part file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-dl-'));
  const body = new Uint8Array(50_000).map((_, i) => (i * 7) % 253);
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-length': body.length });
    if (req.url === '/d/stall.bin') {
      // Half the file, then nothing more.
      res.write(body.subarray(0, body.length / 2));
      return;
    }
    // Five pieces 300 ms apart: 1.2 s in all, never 1 s without data.
    let piece = 0;
    const send = (): void => {
      res.write(body.subarray(piece * 10_000, (piece + 1) * 10_000));
      piece++;
      if (piece === 5) res.end();
      else setTimeout(send, 300);
    };
    send();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}/d/`;
  try {
    const [p] = await downloadFiles([{ file: 'slow.bin', bytes: body.length, sha256: sha(body) }], { dir, mirrors: [base], timeoutMs: 1000 });
    assert.ok(Buffer.from(await readFile(p as string)).equals(body), 'the slow but steady download completes');
    await assert.rejects(
      downloadFiles([{ file: 'stall.bin', bytes: body.length, sha256: sha(body) }], { dir, mirrors: [base], timeoutMs: 1000 }),
      (e: unknown) => e instanceof DataError && e.code === 'DOWNLOAD_FAILED' && /no data .*1000 ms/.test(e.message),
    );
    await assert.rejects(stat(join(dir, 'stall.bin.part')), 'a failed download leaves no partial file');
    await assert.rejects(stat(join(dir, 'stall.bin')));
  } finally {
    server.closeAllConnections();
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
});
