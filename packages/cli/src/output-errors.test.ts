import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { randomImageSet, writeIdxDataset } from '@cvc/data/testing';
import { main } from './index.js';
import { captureEnv } from './testing.js';
import { systemErrorMessage } from './output-errors.js';

/** A stdout whose reader went away (`cvc ... | head -1` after head exited): every write fails with EPIPE. */
function closedPipe(): Writable & { writes: number } {
  const w = new Writable({
    write(_chunk, _enc, cb) {
      w.writes++;
      cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE', errno: -32, syscall: 'write' }));
    },
  }) as Writable & { writes: number };
  w.writes = 0;
  return w;
}

test('output piped into a closed reader (EPIPE) ends the command with exit 141 and no crash, saying nothing more', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-epipe-'));
  try {
    const data = join(dir, 'data');
    await writeIdxDataset(data, randomImageSet(20, 8, 8, 1, 1, 3), randomImageSet(6, 8, 8, 1, 2, 3));
    const stdout = closedPipe();
    const stderr = new PassThrough();
    let err = '';
    stderr.on('data', (c: Buffer) => (err += c.toString()));
    const code = await main(['dataset', 'inspect', data], { cacheDir: join(dir, 'cache'), dataDirs: [], stdout, stderr }, { handleSignals: false });
    assert.equal(code, 141);
    assert.equal(err, '', 'no stack, no message');
    // A write after main returned (a late flush) is no crash either.
    stdout.write('late\n');
    await new Promise((r) => setImmediate(r));
    assert.ok(stdout.writes >= 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a file-system error names the operation and path without a stack (exit 1)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-fserr-'));
  try {
    const data = join(dir, 'data');
    await writeIdxDataset(data, randomImageSet(20, 8, 8, 1, 1, 3), randomImageSet(6, 8, 8, 1, 2, 3));
    const file = join(dir, 'a-file');
    await writeFile(file, 'x');
    const env = captureEnv(join(dir, 'cache'));
    const out = join(file, 'shards');
    assert.equal(await main(['dataset', 'import', data, '--folds', '2', '--out', out], env, { handleSignals: false }), 1);
    assert.doesNotMatch(env.err(), /unexpected error|\n\s+at /);
    assert.match(
      env.err(),
      new RegExp(`^cvc: cannot mkdir ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: a part of the path is a file, not a directory \\(ENOTDIR\\)\n$`),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('systemErrorMessage: errno errors with a syscall only', () => {
  const e = Object.assign(new Error("ENOENT: no such file or directory, open 'nodir/c.csv'"), { code: 'ENOENT', syscall: 'open', path: 'nodir/c.csv' });
  assert.equal(systemErrorMessage(e), 'cannot open nodir/c.csv: no such file or directory (ENOENT)');
  const c = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED', syscall: 'connect', address: '127.0.0.1', port: 9 });
  assert.equal(systemErrorMessage(c), 'cannot connect 127.0.0.1:9: connection refused (ECONNREFUSED)');
  assert.equal(systemErrorMessage(Object.assign(new Error('x'), { code: 'USAGE' })), undefined);
  assert.equal(systemErrorMessage(new Error('plain')), undefined);
});
