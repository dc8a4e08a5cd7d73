import { confusionMatrixPng } from '@cvc/report';

/**
 * A confusion matrix (counts[cluster][class]) as a PNG heat map: one square
 * per (cluster row, class column), darker for more images, each count written
 * in its cell, columns in `columnOrder` (the class each cluster is matched to,
 * row by row) so a good clustering shows a dark diagonal; `classNames` label
 * the columns.
 */
export function confusionPng(matrix: number[][], columnOrder: number[], classNames?: readonly string[]): Buffer {
  const matched = columnOrder.flatMap((c, r) => (c < (matrix[r]?.length ?? 0) ? [[r, c] as const] : []));
  return confusionMatrixPng(matrix, { colOrder: columnOrder, matched, ...(classNames ? { colLabels: classNames } : {}), title: 'clusters x true classes' });
}
