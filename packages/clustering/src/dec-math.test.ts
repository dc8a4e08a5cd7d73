import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argmaxRows, changedShare, ClusteringError, klDivergence, softAssignment, stopDecision, targetDistribution } from './index.js';

const invalid = (field: string, text: RegExp) => (e: unknown) =>
  e instanceof ClusteringError && e.code === 'INVALID_POINTS' && e.field === field && text.test(e.message);

const close = (a: number, b: number, tol = 1e-12): void => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b}`);
const closeAll = (a: ArrayLike<number>, b: readonly number[]): void => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < b.length; i++) close(a[i] as number, b[i] as number);
};

// Three 2-D codes z and two centres μ, worked out by hand:
//   z0 = (0,0), z1 = (0,1), z2 = (3,0); μ0 = (0,0), μ1 = (2,0).
//   |z - μ|²:   z0: 0, 4    z1: 1, 5    z2: 9, 1
//   1/(1+d²):   z0: 1, 1/5  z1: 1/2, 1/6  z2: 1/10, 1/2
//   q (rows normalised): z0: 5/6, 1/6   z1: 3/4, 1/4   z2: 1/6, 5/6
//   f = column sums: f0 = 5/6 + 3/4 + 1/6 = 7/4, f1 = 1/6 + 1/4 + 5/6 = 5/4
//   q²/f:  z0: 25/63, 1/45 (sum 132/315)   z1: 9/28, 1/20 (sum 52/140)   z2: 1/63, 35/63 (sum 36/63)
//   p:     z0: 125/132, 7/132              z1: 45/52, 7/52               z2: 1/36, 35/36
const z = [0, 0, 0, 1, 3, 0];
const mu = [0, 0, 2, 0];
const Q = [5 / 6, 1 / 6, 3 / 4, 1 / 4, 1 / 6, 5 / 6];
const P = [125 / 132, 7 / 132, 45 / 52, 7 / 52, 1 / 36, 35 / 36];

test('Student-t soft assignment (alpha = 1) on a 3x2 case worked out by hand', () => {
  closeAll(softAssignment(z, mu, 3, 2, 2), Q);
  assert.throws(() => softAssignment(z, mu, 3, 3, 2), invalid('codes', /^codes: 6 values, expected n x d = 3 x 3$/));
  assert.throws(() => softAssignment(z, mu, 3, 2, 3), invalid('centres', /4 values, expected k x d = 3 x 2/));
});

test('target distribution p = (q² / f) normalised per row, on the same case', () => {
  const p = targetDistribution(Q, 3, 2);
  closeAll(p, P);
  // Sharper than q: each point's largest share grows.
  for (let i = 0; i < 3; i++) assert.ok(Math.max(p[2 * i] as number, p[2 * i + 1] as number) > Math.max(Q[2 * i] as number, Q[2 * i + 1] as number));
});

test('KL(P‖Q) averaged over points, on the same case', () => {
  // (1/3) Σ_i Σ_j p_ij log(p_ij / q_ij) with the ratios p/q worked out:
  //   z0: (125/132)/(5/6) = 25/22, (7/132)/(1/6) = 7/22
  //   z1: (45/52)/(3/4) = 15/13,   (7/52)/(1/4) = 7/13
  //   z2: (1/36)/(1/6) = 1/6,      (35/36)/(5/6) = 7/6
  const want =
    ((125 / 132) * Math.log(25 / 22) +
      (7 / 132) * Math.log(7 / 22) +
      (45 / 52) * Math.log(15 / 13) +
      (7 / 52) * Math.log(7 / 13) +
      (1 / 36) * Math.log(1 / 6) +
      (35 / 36) * Math.log(7 / 6)) /
    3;
  close(klDivergence(P, Q, 3, 2), want);
  // By hand, per row: z0 0.12105 - 0.06073 = 0.06032, z1 0.12384 - 0.08333 = 0.04051, z2 -0.04977 + 0.14987 = 0.10010.
  close(want, (0.06032 + 0.04051 + 0.1001) / 3, 1e-5);
  close(klDivergence(Q, Q, 3, 2), 0);
  // Zeros are clipped to 1e-7 (Keras' kld), so a zero q gives a large but finite loss.
  assert.ok(Number.isFinite(klDivergence([1, 0], [0, 1], 1, 2)));
  assert.throws(() => klDivergence(P, Q.slice(1), 3, 2), invalid('p, q', /must both have n x k = 3 x 2 values \(got 6 and 5\)/));
  assert.throws(() => targetDistribution(Q, 2, 2), invalid('q', /^q: 6 values, expected n x k = 2 x 2$/));
});

test('hard assignments, confidence and the share that changed', () => {
  const { labels, confidence } = argmaxRows(Q, 3, 2);
  assert.deepEqual([...labels], [0, 0, 1]);
  closeAll(confidence, [Math.fround(5 / 6), 0.75, Math.fround(5 / 6)]);
  close(changedShare([0, 0, 1], [0, 1, 1]), 1 / 3);
  close(changedShare([0, 0, 1], labels), 0);
  assert.throws(() => changedShare([0], [0, 1]), invalid('after', /1 assignments before but 2 after/));
});

test('the stop rule: converged below tol after the first refresh, else at the batch budget', () => {
  const base = { tol: 0.001, maxIterations: 1000 };
  // The first refresh compares with the k-means labels: never a convergence.
  assert.equal(stopDecision({ ...base, iteration: 0, changed: 0 }), null);
  assert.equal(stopDecision({ ...base, iteration: 140, changed: 0.0009 }), 'converged');
  assert.equal(stopDecision({ ...base, iteration: 140, changed: 0.001 }), null);
  assert.equal(stopDecision({ ...base, iteration: 1000, changed: 0.5 }), 'max-iterations');
  assert.equal(stopDecision({ ...base, iteration: 1000, changed: 0 }), 'converged');
});
