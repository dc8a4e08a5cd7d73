import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { throwIfAborted } from '@cvc/core';
import type { ImageSet } from '@cvc/data';
import { loadEncoder } from '@cvc/model';
import type { ClusterJob } from '@cvc/proto';
import { writeClusterReport, type MethodScore } from '@cvc/report';
import type { EmbeddedImages } from './cluster-input.js';
import type { CliEnv } from './env.js';
import { RemoteError } from './errors.js';
import { embedImported, type ImportedVersion } from './imported-input.js';

/** A clustering job's assignments.csv: one row per image, in file order. */
export interface JobAssignments {
  /** Each image's record: `split:index` or its source file. */
  readonly paths: readonly string[];
  readonly clusters: Int32Array;
  /** Higher = more confident (a `distance` column is negated). */
  readonly confidence: Float64Array;
}

/** Splits one CSV line, honouring double-quoted fields ("" inside quotes is a quote). */
export function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      out.push(field);
      field = '';
    } else field += ch;
  }
  out.push(field);
  return out;
}

/**
 * Parses a job's assignments.csv: which image each row is, `cluster`, and
 * `confidence` (or `distance`). The image is the `source` column when there
 * is one (the coordinator's: the image file, or `split:index`), else
 * `split:index` from the `split` and `index` columns, else the `record` (or
 * `path`) column, prefixed with `split` when it is a bare index. (The
 * coordinator's `record` is the row's ordinal, not the image.) A missing
 * column or a bad value is a RemoteError naming the file and line.
 */
export function parseJobAssignments(csv: string, file: string): JobAssignments {
  const lines = csv.split(/\r?\n/).filter((l) => l.length > 0);
  const header = splitCsvLine(lines[0] ?? '');
  const col = (...names: string[]): number => header.findIndex((h) => names.includes(h));
  const pathCol = col('record', 'path');
  const clusterCol = col('cluster');
  const confCol = col('confidence');
  const distCol = col('distance');
  const splitCol = col('split');
  const indexCol = col('index');
  const sourceCol = col('source');
  if (pathCol < 0 && sourceCol < 0 && (splitCol < 0 || indexCol < 0))
    throw new RemoteError('CHECKSUM', `${file}: the header '${lines[0] ?? ''}' lacks a source, split and index, record or path column`);
  if (clusterCol < 0 || clusterCol < 0 || (confCol < 0 && distCol < 0))
    throw new RemoteError('CHECKSUM', `${file}: the header '${lines[0] ?? ''}' lacks a cluster or confidence (or distance) column`);
  const n = lines.length - 1;
  const paths: string[] = [];
  const clusters = new Int32Array(n);
  const confidence = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const f = splitCsvLine(lines[i + 1] as string);
    const split = splitCol >= 0 ? (f[splitCol] ?? '') : '';
    const source = sourceCol >= 0 ? (f[sourceCol] ?? '') : '';
    const index = indexCol >= 0 ? (f[indexCol] ?? '') : '';
    const record = pathCol >= 0 ? (f[pathCol] ?? '') : '';
    if (source) paths.push(source);
    else if (split && /^\d+$/.test(index)) paths.push(`${split}:${index}`);
    else paths.push(split && /^\d+$/.test(record) ? `${split}:${record}` : record);
    const c = Number(f[clusterCol]);
    const s = Number(f[confCol >= 0 ? confCol : distCol]);
    if (!Number.isInteger(c) || c < 0 || !Number.isFinite(s))
      throw new RemoteError('CHECKSUM', `${file} line ${i + 2}: bad cluster or confidence in '${lines[i + 1]}'`);
    clusters[i] = c;
    confidence[i] = confCol >= 0 ? s : -s;
  }
  return { paths, clusters, confidence };
}

/** The images of `wanted` (records), in that order, from the embedded splits. */
function gather(
  wanted: readonly string[],
  splits: readonly EmbeddedImages[],
  where: string,
): { images: ImageSet; codes: { data: Float32Array; n: number; d: number } } {
  const index = new Map<string, [EmbeddedImages, number]>();
  for (const s of splits) s.paths.forEach((p, i) => index.set(p, [s, i]));
  const first = splits[0] as EmbeddedImages;
  const px = first.pixels as ImageSet;
  const per = px.height * px.width * px.channels;
  const d = first.codes.d;
  const images = new Uint8Array(wanted.length * per);
  const labels = new Uint8Array(wanted.length);
  const codes = new Float32Array(wanted.length * d);
  wanted.forEach((p, i) => {
    const hit = index.get(p);
    if (!hit) throw new RemoteError('CHECKSUM', `record ${p} of the job's assignments.csv is not in ${where}`);
    const [s, j] = hit;
    const set = s.pixels as ImageSet;
    images.set(set.images.subarray(j * per, (j + 1) * per), i * per);
    labels[i] = s.labels[j] as number;
    codes.set(s.codes.data.subarray(j * d, (j + 1) * d), i * d);
  });
  return { images: { ...px, images, labels, count: wanted.length }, codes: { data: codes, n: wanted.length, d } };
}

/**
 * Writes the cluster report of a fetched job into `dir`: the job's own
 * assignments and confidences, the images they name (read from `imported`,
 * the dataset version the job clustered), the fine-tuned encoder's codes
 * (from `fetchedDir`) for the 2-D map, and the scores before and after.
 */
export async function writeClusterJobReport(
  dir: string,
  fetchedDir: string,
  job: ClusterJob,
  imported: ImportedVersion,
  env: CliEnv,
  signal?: AbortSignal,
): Promise<void> {
  const file = join(fetchedDir, 'assignments.csv');
  const a = parseJobAssignments(await readFile(file, 'utf8'), file);
  const encoder = await loadEncoder(fetchedDir);
  // Records name their split (`test:12`); source files (image folders) may come from either.
  const prefixes = new Set(a.paths.map((p) => /^(train|test):\d+$/.exec(p)?.[1] ?? '*'));
  const available = (['test', 'train'] as const).filter((s) => imported.manifest.shards.some((e) => e.split === s));
  const needed = prefixes.has('*') ? available : available.filter((s) => prefixes.has(s));
  const splits: EmbeddedImages[] = [];
  for (const split of needed) {
    throwIfAborted(signal, `cluster-job fetch ${job.id}`);
    splits.push(await embedImported(encoder, imported, { split, batchSize: 256, ...(signal ? { signal } : {}) }));
  }
  encoder.dispose();
  if (splits.length === 0) throw new RemoteError('NO_TEST_SPLIT', `${imported.where} has none of the splits the job's assignments name`);
  const { images, codes } = gather(a.paths, splits, imported.where);
  const first = splits[0] as EmbeddedImages;
  const r = job.result;
  const method = job.spec?.method ?? 'fine-tune';
  const methods: MethodScore[] = [
    ...(r?.initialAcc !== undefined
      ? [{ name: 'kmeans (source encoder)', acc: r.initialAcc, ...(r.initialNmi !== undefined ? { nmi: r.initialNmi } : {}) }]
      : []),
    {
      name: method,
      ...(r?.acc !== undefined ? { acc: r.acc } : {}),
      ...(r?.nmi !== undefined ? { nmi: r.nmi } : {}),
      ...(r?.ari !== undefined ? { ari: r.ari } : {}),
      ...(job.history.length ? { seconds: (job.history[job.history.length - 1] as { seconds: number }).seconds } : {}),
    },
  ];
  let top = 0;
  for (const c of a.clusters) top = Math.max(top, c + 1);
  const k = Math.max(job.spec?.k ?? 0, top, 1);
  const files = await writeClusterReport(dir, {
    images,
    assignments: a.clusters,
    confidence: a.confidence,
    ...(first.labelled ? { labels: images.labels, classNames: first.classNames } : {}),
    codes,
    methods,
    method,
    k,
    paths: a.paths,
    title: `Clusters of ${a.paths.length} images (k=${k}, ${method} job ${job.id})`,
  });
  env.stdout.write(
    `cluster report written to ${dir}: ${files.markdown}, ${files.map}${files.confusion ? `, ${files.confusion}` : ''}, ${files.clusters.length} cluster pictures\n`,
  );
}
