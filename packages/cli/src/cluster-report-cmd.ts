import { writeClusterReport, type MethodScore } from '@cvc/report';
import type { EmbeddedImages } from './cluster-input.js';
import type { CliEnv } from './env.js';
import { UsageError } from './errors.js';

/** What `cvc cluster --report DIR` pictures: the final clustering of the command and every method it scored. */
export interface ClusterCommandReport {
  readonly dir: string;
  readonly input: EmbeddedImages;
  /** The clusters written to assignments.csv. */
  readonly assignments: ArrayLike<number>;
  /** The CSV's measure of each image: a distance to the centre (lower = more confident) or a confidence (higher = more). */
  readonly measure: ArrayLike<number>;
  readonly measureKind: 'distance' | 'confidence';
  /** The scores of each method, as `cvc cluster` prints them (labelled images only). */
  readonly results: Readonly<Record<string, { readonly accuracy: number; readonly nmi: number; readonly ari: number; readonly seconds: number }>>;
  readonly k: number;
  /** The method behind `assignments`. */
  readonly method: string;
  /** A 2-D map of the codes (x0, y0, ...), e.g. a UMAP; default a PCA of the codes. */
  readonly coords?: ArrayLike<number>;
  readonly coordsName?: string;
  /** Print the summary line on stderr (stdout holds JSON). */
  readonly json: boolean;
}

/** Writes `cvc cluster --report DIR`: a picture per cluster, the 2-D map, the confusion matrix and report.md. */
export async function writeClusterCommandReport(r: ClusterCommandReport, env: CliEnv): Promise<void> {
  const { input } = r;
  const images = input.pixels;
  if (!images) throw new UsageError(`--report ${r.dir} needs the images' pixels, which this input did not keep`);
  const confidence = r.measureKind === 'confidence' ? r.measure : Float64Array.from(r.measure, (d) => -d);
  const methods: MethodScore[] = Object.entries(r.results).map(([name, s]) => ({ name, acc: s.accuracy, nmi: s.nmi, ari: s.ari, seconds: s.seconds }));
  const files = await writeClusterReport(r.dir, {
    images,
    assignments: r.assignments,
    confidence,
    ...(input.labelled ? { labels: input.labels, classNames: input.classNames } : {}),
    codes: input.codes,
    ...(r.coords ? { coords: r.coords, coordsName: r.coordsName ?? 'UMAP' } : {}),
    methods,
    method: r.method,
    k: r.k,
    paths: input.paths,
    title: `Clusters of ${input.codes.n} images (k=${r.k}, ${r.method})`,
  });
  const pictures = [files.map, ...(files.confusion ? [files.confusion] : []), `${files.clusters.length} cluster pictures`];
  (r.json ? env.stderr : env.stdout).write(`cluster report written to ${r.dir}: ${files.markdown}, ${pictures.join(', ')}\n`);
}
