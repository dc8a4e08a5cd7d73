import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describeError, isFileNotFound } from '@cvc/core';
import { DataError } from './errors.js';
import { datasetInfo, type DatasetInfo, type RemoteFile, CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH } from './registry.js';
import { readTar } from './tar.js';

export interface DownloadOptions {
  /** Directory the files are written to. */
  readonly dir: string;
  /** Base URLs tried in order (each file's URL is base + file name). */
  readonly mirrors: readonly string[];
  /** Injected for tests; defaults to the global fetch. */
  readonly fetch?: typeof fetch;
  /** How long a request may go without receiving data, in milliseconds (default 30 000): an idle limit, not one on the whole transfer. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /** Called as bytes arrive. */
  readonly onProgress?: (file: string, received: number, total: number) => void;
}

/**
 * Downloads `files` into `opts.dir`, verifying each SHA-256, and returns the
 * paths. A file already present with the right hash is not fetched again.
 * A file whose hash does not match is deleted and reported. When no mirror
 * can be reached the error lists which files to place where by hand.
 */
export async function downloadFiles(files: readonly RemoteFile[], opts: DownloadOptions): Promise<string[]> {
  await mkdir(opts.dir, { recursive: true });
  const doFetch = opts.fetch ?? globalThis.fetch;
  const paths: string[] = [];
  for (const f of files) {
    const dest = join(opts.dir, f.file);
    if ((await sha256File(dest)) === f.sha256) {
      paths.push(dest);
      continue;
    }
    const failures: string[] = [];
    let done = false;
    for (const base of opts.mirrors) {
      const url = base + f.file;
      try {
        await fetchVerified(doFetch, url, dest, f, opts);
        done = true;
        break;
      } catch (err) {
        if (err instanceof DataError && err.code === 'CHECKSUM_MISMATCH') throw err;
        failures.push(`${url}: ${describeError(err)}`);
      }
    }
    if (!done) {
      const list = files.map((x) => `  ${join(opts.dir, x.file)}  (sha256 ${x.sha256})`).join('\n');
      throw new DataError(
        'DOWNLOAD_FAILED',
        `could not download ${f.file}:\n  ${failures.join('\n  ')}\nWithout network access, place these files by hand:\n${list}`,
      );
    }
    paths.push(dest);
  }
  return paths;
}

async function fetchVerified(doFetch: typeof fetch, url: string, dest: string, f: RemoteFile, opts: DownloadOptions): Promise<void> {
  // An idle limit, re-armed by every chunk: a large file on a slow link takes as long as it takes while data flows.
  const idleMs = opts.timeoutMs ?? 30_000;
  const idle = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => idle.abort(new Error(`no data from the server for ${idleMs} ms`)), idleMs);
  };
  const signal = opts.signal ? AbortSignal.any([opts.signal, idle.signal]) : idle.signal;
  const tmp = `${dest}.part`;
  let fh: FileHandle | undefined;
  try {
    arm();
    const res = await doFetch(url, { signal });
    if (!res.ok || res.body === null) throw new Error(`HTTP ${res.status}`);
    const hash = createHash('sha256');
    fh = await open(tmp, 'w');
    let received = 0;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      arm();
      hash.update(chunk);
      received += chunk.length;
      await fh.write(chunk);
      opts.onProgress?.(f.file, received, f.bytes);
    }
    await fh.close();
    fh = undefined;
    const got = hash.digest('hex');
    if (got !== f.sha256)
      throw new DataError('CHECKSUM_MISMATCH', `downloaded from ${url} with sha256 ${got}, expected ${f.sha256}; the file was discarded`, f.file);
    await rename(tmp, dest);
  } catch (err) {
    // A failed, stalled or stopped download leaves no partial file behind.
    await fh?.close();
    await rm(tmp, { force: true });
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** SHA-256 of a file, or undefined when it does not exist. */
export async function sha256File(path: string): Promise<string | undefined> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if (isFileNotFound(err)) return undefined;
    throw err;
  }
  try {
    const hash = createHash('sha256');
    for await (const chunk of fh.createReadStream()) hash.update(chunk as Buffer);
    return hash.digest('hex');
  } finally {
    await fh.close();
  }
}

/**
 * Downloads a canonical dataset (mnist, fashion-mnist, cifar-10) into
 * `cacheDir/NAME` and returns that directory. CIFAR-10's archive is unpacked
 * into its batch files.
 */
export async function downloadDataset(
  name: string,
  cacheDir: string,
  opts: Omit<DownloadOptions, 'dir' | 'mirrors'> & { mirrors?: readonly string[]; /** Overrides the registry entry (tests). */ info?: DatasetInfo } = {},
): Promise<string> {
  const info = opts.info ?? datasetInfo(name);
  if (info === undefined) throw new DataError('DATASET_UNKNOWN', `unknown dataset '${name}' (known: mnist, fashion-mnist, cifar-10)`);
  const dir = join(cacheDir, name);
  const paths = await downloadFiles(info.downloads, { ...opts, dir, mirrors: opts.mirrors ?? info.mirrors });
  if (info.format === 'cifar10') {
    const archive = paths[0] as string;
    const entries = readTar(gunzipSync(await readFile(archive)), archive);
    const wanted = new Set([...CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH, 'batches.meta.txt']);
    for (const e of entries) {
      const base = e.name.split('/').pop() ?? '';
      if (wanted.has(base)) await writeWhole(join(dir, base), e.data);
    }
  }
  return dir;
}

/**
 * Writes `data` to `path` whole or not at all: into `path.part`, then renamed
 * over `path`. An extraction cut short (Ctrl-C, a full disk) leaves the old
 * file or none, never a partial batch that could read as a smaller one.
 */
async function writeWhole(path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.part`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
