import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { clusterGridPng } from './cluster-grid.js';
import { summariseClusters } from './cluster-summary.js';
import { clusterReportMarkdown, type MethodScore } from './cluster-report-md.js';
import { confusionMatrixPng } from './confusion.js';
import { ReportError } from './errors.js';
import { pca2d, type Rows } from './pca.js';
import { categoryColor } from './palette.js';
import { scatterMapPng, type ScatterPanel } from './scatter.js';
import type { ImageStack } from './tiles.js';

export type { MethodScore } from './cluster-report-md.js';

/** What `writeClusterReport` pictures: one clustering of a set of images. */
export interface ClusterReportInput {
  /** The images, in the order of `assignments` (an `ImageSet` fits). */
  readonly images: ImageStack;
  /** Cluster of each image, 0..k-1. */
  readonly assignments: ArrayLike<number>;
  /** Confidence of each assignment, higher = more confident (e.g. the soft assignment, or minus the distance to the centre). */
  readonly confidence: ArrayLike<number>;
  /** True class of each image, where known. */
  readonly labels?: ArrayLike<number>;
  /** Names of the classes (index = label). */
  readonly classNames?: readonly string[];
  /** 2-D map of the codes, x0, y0, x1, y1, ... (e.g. a UMAP to 2 dimensions); without it the report computes a PCA. */
  readonly coords?: ArrayLike<number>;
  /** What `coords` are, for the axis and the text (default `UMAP` when given, `PCA` when computed). */
  readonly coordsName?: string;
  /** The codes, for the PCA when `coords` is absent (default: the pixels). */
  readonly codes?: Rows;
  /** The scores of every method that was run, shown side by side. */
  readonly methods: readonly MethodScore[];
  /** The method whose `assignments` are pictured (named in report.md). */
  readonly method?: string;
  /** Number of clusters (default: the largest assignment + 1). */
  readonly k?: number;
  /** Heading of report.md (default `Clustering report`). */
  readonly title?: string;
  /** Where each image came from (a file, or `split:index`), listed for the least confident members. */
  readonly paths?: readonly string[];
  /** Side of each cluster's grid of most confident members (default 8). */
  readonly gridSide?: number;
  /** How many least confident members each cluster's picture shows (default `gridSide`). */
  readonly leastCount?: number;
}

/** The files `writeClusterReport` wrote, as paths inside its directory. */
export interface ClusterReportFiles {
  readonly markdown: string;
  readonly map: string;
  readonly confusion?: string;
  readonly clusters: readonly string[];
}

function check(ok: boolean, field: string, message: string): void {
  if (!ok) throw new ReportError('BAD_INPUT', `cluster report: ${field}: ${message}`);
}

async function put(file: string, bytes: string | Uint8Array): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, file);
}

/**
 * Writes a clustering's pictures and report.md into `dir` (created): one
 * `cluster-NN.png` per cluster (its most confident members and a row of its
 * least confident, captioned with the true class where known, red when it is
 * not the cluster's most frequent class), `map.png` (the 2-D map coloured by cluster, and by true
 * class in a second panel when labels exist), `confusion.png` (clusters x
 * classes in the Hungarian-matched order; labels only) and `report.md` (the
 * scores of every method side by side, and the pictures).
 */
export async function writeClusterReport(dir: string, input: ClusterReportInput): Promise<ClusterReportFiles> {
  const { images, assignments, confidence, labels } = input;
  const n = images.count;
  check(
    images.images.length === n * images.height * images.width * images.channels,
    'images',
    `${images.images.length} values for ${n} images of ${images.height}x${images.width}x${images.channels}`,
  );
  check(assignments.length === n, 'assignments', `${assignments.length} values for ${n} images`);
  check(confidence.length === n, 'confidence', `${confidence.length} values for ${n} images`);
  let maxCluster = -1;
  for (let i = 0; i < n; i++) {
    const a = assignments[i] as number;
    check(Number.isInteger(a) && a >= 0, 'assignments', `image ${i} has cluster ${a}; clusters are integers from 0`);
    maxCluster = Math.max(maxCluster, a);
  }
  const k = input.k ?? maxCluster + 1;
  check(Number.isInteger(k) && k > maxCluster && k >= 1, 'k', `${k} clusters but an image is in cluster ${maxCluster}`);
  let classes = input.classNames?.length ?? 0;
  if (labels) {
    check(labels.length === n, 'labels', `${labels.length} values for ${n} images`);
    for (let i = 0; i < n; i++) classes = Math.max(classes, (labels[i] as number) + 1);
  }
  if (input.coords) check(input.coords.length === 2 * n, 'coords', `${input.coords.length} values; a 2-D map of ${n} images needs ${2 * n}`);
  if (input.codes)
    check(input.codes.n === n && input.codes.data.length === n * input.codes.d, 'codes', `${input.codes.n} codes of ${input.codes.d} values for ${n} images`);
  check(
    input.methods.every((m) => typeof m.name === 'string' && m.name !== ''),
    'methods',
    'every method needs a name',
  );

  const classNames = labels ? Array.from({ length: classes }, (_, c) => input.classNames?.[c] ?? `class ${c}`) : undefined;
  const { clusters, counts } = summariseClusters(assignments, confidence, k, labels ? { values: labels, classes } : undefined);
  await mkdir(dir, { recursive: true });
  const digits = String(Math.max(0, k - 1)).length;
  const clusterFiles: string[] = [];
  for (const s of clusters) {
    const file = `cluster-${String(s.cluster).padStart(Math.max(2, digits), '0')}.png`;
    const label = (i: number): number | undefined => (labels ? labels[i] : undefined);
    await put(
      join(dir, file),
      clusterGridPng(images, s, {
        ...(input.gridSide !== undefined ? { side: input.gridSide } : {}),
        ...(input.leastCount !== undefined ? { least: input.leastCount } : {}),
        ...(classNames ? { caption: (i: number) => classNames[label(i) as number] ?? '', classOf: label, classNames } : {}),
      }),
    );
    clusterFiles.push(file);
  }

  const coordsName = input.coordsName ?? (input.coords ? 'UMAP' : 'PCA');
  const xy = input.coords ?? pca2d(input.codes ?? { data: images.images, n, d: images.height * images.width * images.channels });
  const matched = clusters.map((s) => s.matchedClass);
  // Clusters (map legend, confusion rows) in the order of the classes they are matched to: the matched cells form the diagonal.
  const byClass = (c: number): number => ((matched[c] as number) < 0 ? Infinity : (matched[c] as number));
  const rowOrder = [...clusters.keys()].sort((a, b) => byClass(a) - byClass(b) || a - b);
  const panels: ScatterPanel[] = [];
  if (labels && classNames) {
    // A cluster takes the colour of the class it is matched to, so the two panels compare at a glance.
    const count = Math.max(k, classes);
    let spare = classes;
    const colors = matched.map((c) => categoryColor(c >= 0 ? c : spare++, count));
    const names = matched.map((c, r) => `cluster ${r}${c >= 0 ? ` ~ ${classNames[c]}` : ''}`);
    panels.push({ title: 'coloured by cluster', category: assignments, names, colors, legendOrder: rowOrder });
    panels.push({ title: 'coloured by true class', category: labels, names: classNames, colors: classNames.map((_, c) => categoryColor(c, count)) });
  } else panels.push({ title: 'coloured by cluster', category: assignments, names: Array.from({ length: k }, (_, c) => `cluster ${c}`) });
  const what = input.codes || input.coords ? 'codes' : 'pixels';
  await put(
    join(dir, 'map.png'),
    scatterMapPng(xy, panels, {
      title: `${coordsName} of the ${input.codes ? `${input.codes.d}-d ` : ''}${what}, ${n} images`,
      xTitle: `${coordsName} 1`,
      yTitle: `${coordsName} 2`,
    }),
  );

  let confusion: string | undefined;
  if (counts && classNames) {
    confusion = 'confusion.png';
    await put(
      join(dir, confusion),
      confusionMatrixPng(counts, {
        rowOrder,
        colLabels: classNames,
        matched: matched.flatMap((c, r) => (c >= 0 ? [[r, c] as const] : [])),
        title: `clusters x true classes${input.method ? ` (${input.method})` : ''}`,
      }),
    );
  }
  const files: ClusterReportFiles = { markdown: 'report.md', map: 'map.png', ...(confusion ? { confusion } : {}), clusters: clusterFiles };
  await put(
    join(dir, files.markdown),
    clusterReportMarkdown({
      title: input.title ?? 'Clustering report',
      n,
      k,
      methods: input.methods,
      clusters,
      files,
      coordsName,
      what,
      ...(input.method ? { method: input.method } : {}),
      ...(classNames ? { classNames } : {}),
      ...(input.paths ? { paths: input.paths } : {}),
      ...(input.codes ? { codeSize: input.codes.d } : {}),
    }),
  );
  return files;
}
