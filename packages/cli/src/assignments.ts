import type { Points } from '@cvc/clustering';

/** One image's cluster, as a row of assignments.csv. */
export interface Assignment {
  /** The file relative to the image folder, the record's source path, or `split:index`. */
  readonly path: string;
  readonly cluster: number;
  /** Distance to the cluster's centre (k-means) or the soft-assignment confidence (DEC). */
  readonly score: number;
  /** The class index, when the images are labelled. */
  readonly label?: number;
  /** The class name, when known. */
  readonly className?: string;
}

/** Which measure the score column holds. */
export type ScoreColumn = 'distance' | 'confidence';

/**
 * One CSV field as RFC 4180 writes it: quoted when it holds a comma, a
 * double quote, a line break or leading/trailing spaces, with quotes doubled.
 */
export function csvField(v: string | number | undefined): string {
  if (v === undefined) return '';
  const s = typeof v === 'number' ? String(v) : v;
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One CSV line (no line terminator). */
export function csvLine(fields: readonly (string | number | undefined)[]): string {
  return fields.map(csvField).join(',');
}

/**
 * The text of assignments.csv: a header `path,cluster,distance|confidence,label,class`
 * and one row per image, in input order; label and class are empty when unknown.
 * Lines end in `\n`.
 */
export function assignmentsCsv(rows: readonly Assignment[], score: ScoreColumn): string {
  const lines = [csvLine(['path', 'cluster', score, 'label', 'class'])];
  for (const r of rows) lines.push(csvLine([r.path, r.cluster, Number(r.score.toPrecision(6)), r.label, r.className]));
  return lines.join('\n') + '\n';
}

/** The Euclidean distance of each point to the centre of its cluster (`centers`: k x d, row-major). */
export function distancesToCentres(points: Points, centers: Float64Array, labels: ArrayLike<number>): Float64Array {
  const out = new Float64Array(points.n);
  const d = points.d;
  for (let i = 0; i < points.n; i++) {
    const c = (labels[i] as number) * d;
    let s = 0;
    for (let j = 0; j < d; j++) {
      const t = (points.data[i * d + j] as number) - (centers[c + j] as number);
      s += t * t;
    }
    out[i] = Math.sqrt(s);
  }
  return out;
}

/**
 * The path of each record of a split: its source path when the dataset
 * keeps them (an imported image folder), else `split:index`.
 */
export function recordPaths(split: string, count: number, sourcePaths?: readonly string[]): string[] {
  if (sourcePaths !== undefined && sourcePaths.length !== count)
    throw new RangeError(`the ${split} split has ${count} records but ${sourcePaths.length} source paths`);
  return Array.from({ length: count }, (_, i) => sourcePaths?.[i] ?? `${split}:${i}`);
}
