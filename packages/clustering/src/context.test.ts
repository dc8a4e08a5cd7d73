import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClusteringError, withContext } from './index.js';

const rows = (n: number, d: number, base: number): { data: Float64Array; n: number; d: number } => ({
  data: Float64Array.from({ length: n * d }, (_, i) => base + i),
  n,
  d,
});

test('withContext puts the points first, then a seeded sample of distinct pool rows', () => {
  const points = rows(3, 2, 0);
  const pool = rows(50, 2, 1000);
  const r = withContext(points, pool, 10, 7);
  assert.equal(r.own, 3);
  assert.equal(r.points.n, 13);
  assert.deepEqual([...r.points.data.subarray(0, 6)], [...points.data]);
  assert.equal(new Set(r.taken).size, 10);
  r.taken.forEach((row, i) => assert.deepEqual([...r.points.data.subarray((3 + i) * 2, (4 + i) * 2)], [...pool.data.subarray(row * 2, row * 2 + 2)]));
  // Reproducible from the seed; another seed takes other rows.
  assert.deepEqual([...withContext(points, pool, 10, 7).taken], [...r.taken]);
  assert.notDeepEqual([...withContext(points, pool, 10, 8).taken], [...r.taken]);
});

test('withContext with count 0 is the points alone; a bad pool or count is a typed error', () => {
  const r = withContext(rows(4, 3, 0), rows(0, 1, 0), 0);
  assert.equal(r.points.n, 4);
  assert.equal(r.taken.length, 0);
  assert.throws(
    () => withContext(rows(4, 3, 0), rows(10, 2, 0), 5),
    (e: unknown) => e instanceof ClusteringError && e.code === 'INVALID_POINTS',
  );
  assert.throws(
    () => withContext(rows(4, 3, 0), rows(10, 3, 0), 11),
    (e: unknown) => e instanceof ClusteringError && e.code === 'TOO_FEW_POINTS',
  );
  assert.throws(
    () => withContext(rows(4, 3, 0), rows(10, 3, 0), -1),
    (e: unknown) => e instanceof ClusteringError && e.code === 'INVALID_OPTION',
  );
});

test('withContext refuses points or a pool whose buffer does not make its rows, or holds a NaN, naming which (no rows of zeros)', () => {
  const is = (field: string, text: string) => (e: unknown) =>
    e instanceof ClusteringError && e.code === 'INVALID_POINTS' && e.field === field && e.message.includes(text);
  assert.throws(() => withContext({ data: new Float64Array(4), n: 3, d: 2 }, rows(5, 2, 0), 1), is('points', '4 values do not make 3 rows of 2'));
  assert.throws(() => withContext(rows(3, 2, 0), { data: new Float64Array(7), n: 4, d: 2 }, 1), is('context', '7 values do not make 4 rows of 2'));
  const pool = rows(5, 2, 0);
  pool.data[9] = NaN;
  assert.throws(() => withContext(rows(3, 2, 0), pool, 2), is('context', 'row 4 column 1 is NaN'));
  // With no context rows asked for, the pool is not looked at.
  assert.equal(withContext(rows(3, 2, 0), pool, 0).points.n, 3);
});
