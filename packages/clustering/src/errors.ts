import { CvcError } from '@cvc/core';

/**
 * Why a clustering step refused its input: an option out of range
 * (`INVALID_OPTION`, naming the option), points that are not finite numbers
 * (`INVALID_POINTS`, naming the first bad row; also points so large that a
 * fit's squared distances overflow, and inputs of the wrong shape: values
 * that do not make n rows of d, label lists of unequal length), fewer points than the step
 * needs (`TOO_FEW_POINTS`), or a covariance that is not positive definite even
 * after regularisation (`SINGULAR_COVARIANCE`).
 */
export type ClusteringErrorCode = 'INVALID_OPTION' | 'INVALID_POINTS' | 'TOO_FEW_POINTS' | 'SINGULAR_COVARIANCE';

/** A typed error of @cvc/clustering; `field` names the option or input it is about. */
export class ClusteringError extends CvcError<ClusteringErrorCode> {
  readonly field: string;

  constructor(code: ClusteringErrorCode, field: string, message: string, options?: { cause?: unknown }) {
    super(code, `${field}: ${message}`, options);
    this.field = field;
  }
}

/** Throws INVALID_OPTION unless `v` is an integer in [min, max]. */
export function checkInt(field: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(v) || v < min || v > max)
    throw new ClusteringError('INVALID_OPTION', field, `must be an integer ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in ${min}..${max}`}, got ${v}`);
}

/** Throws INVALID_OPTION unless `v` is a finite number in [min, max]. */
export function checkNumber(field: string, v: number, min: number, max = Infinity): void {
  if (!Number.isFinite(v) || v < min || v > max)
    throw new ClusteringError('INVALID_OPTION', field, `must be a number ${max === Infinity ? `>= ${min}` : `in ${min}..${max}`}, got ${v}`);
}

/** Throws INVALID_POINTS when the shape is wrong or a value is NaN or infinite (naming the row). */
export function checkPoints(field: string, p: { readonly data: ArrayLike<number>; readonly n: number; readonly d: number }): void {
  if (!Number.isInteger(p.n) || !Number.isInteger(p.d) || p.n < 0 || p.d < 1 || p.data.length !== p.n * p.d)
    throw new ClusteringError('INVALID_POINTS', field, `${p.data.length} values do not make ${p.n} rows of ${p.d}`);
  checkFinite(field, p.data, p.n * p.d, p.d);
}

/** Throws INVALID_POINTS naming the row and column of the first of `data[0..count)` that is NaN or infinite (rows of `d` values). */
export function checkFinite(field: string, data: ArrayLike<number>, count: number, d: number): void {
  for (let i = 0; i < count; i++) {
    const v = data[i] as number;
    if (!Number.isFinite(v))
      throw new ClusteringError('INVALID_POINTS', field, `row ${Math.floor(i / d)} column ${i % d} is ${v}; every value must be a finite number`);
  }
}
