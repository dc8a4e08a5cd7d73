import { hungarian } from '@cvc/clustering';

/** What the report says about one cluster. */
export interface ClusterSummary {
  readonly cluster: number;
  /** Member indices, most confident first. */
  readonly members: readonly number[];
  /** The class the Hungarian matching gives this cluster (-1: unmatched, or no labels). */
  readonly matchedClass: number;
  /** The most frequent true class among its members (-1 without labels or members). */
  readonly majorityClass: number;
  /** Members of the matched class / members (NaN without labels or members). */
  readonly matchedShare: number;
  /** Members of the majority class / members. */
  readonly majorityShare: number;
}

/** The clusters (0..k-1) with their members sorted by confidence (highest first; ties by index). */
export function clusterMembers(assignments: ArrayLike<number>, confidence: ArrayLike<number>, k: number): number[][] {
  const members = Array.from({ length: k }, () => [] as number[]);
  for (let i = 0; i < assignments.length; i++) members[assignments[i] as number]?.push(i);
  const conf = (i: number): number => {
    const c = confidence[i] as number;
    return Number.isNaN(c) ? -Infinity : c;
  };
  for (const m of members) m.sort((a, b) => conf(b) - conf(a) || a - b);
  return members;
}

/** counts[cluster][class], k x classes, whatever values occur. */
export function countMatrix(assignments: ArrayLike<number>, labels: ArrayLike<number>, k: number, classes: number): number[][] {
  const m = Array.from({ length: k }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < assignments.length; i++) {
    const row = m[assignments[i] as number];
    const c = labels[i] as number;
    if (row && c >= 0 && c < classes) row[c] = (row[c] as number) + 1;
  }
  return m;
}

/** The class matched to each cluster by the Hungarian algorithm on the counts (maximum agreement); -1 for a cluster left unmatched. */
export function matchClusters(counts: readonly (readonly number[])[]): number[] {
  let max = 0;
  for (const row of counts) for (const v of row) if (v > max) max = v;
  // Rectangular as it is (k clusters x classes): hungarian leaves the rows past the smaller side at -1.
  return hungarian(counts.map((row) => row.map((v) => max - v)));
}

/** Each cluster's members (by confidence) and, with labels, its matched and majority class. */
export function summariseClusters(
  assignments: ArrayLike<number>,
  confidence: ArrayLike<number>,
  k: number,
  labels?: { readonly values: ArrayLike<number>; readonly classes: number },
): { clusters: ClusterSummary[]; counts?: number[][] } {
  const members = clusterMembers(assignments, confidence, k);
  if (!labels)
    return { clusters: members.map((m, cluster) => ({ cluster, members: m, matchedClass: -1, majorityClass: -1, matchedShare: NaN, majorityShare: NaN })) };
  const counts = countMatrix(assignments, labels.values, k, labels.classes);
  const matched = matchClusters(counts);
  const clusters = members.map((m, cluster) => {
    const row = counts[cluster] as number[];
    const majority = m.length ? row.indexOf(Math.max(...row)) : -1;
    const mc = matched[cluster] ?? -1;
    return {
      cluster,
      members: m,
      matchedClass: mc,
      majorityClass: majority,
      matchedShare: m.length && mc >= 0 ? (row[mc] as number) / m.length : NaN,
      majorityShare: m.length ? (row[majority] as number) / m.length : NaN,
    };
  });
  return { clusters, counts };
}
