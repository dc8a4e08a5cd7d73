import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { FULL_COVARIANCE_MAX_DIMS, clusterMethodFromFlags, runClusterMethod, type ClusterMethod } from './cluster-methods.js';
import { UsageError } from './errors.js';

const sink = new Writable({ write: (_c, _e, cb) => cb() });

/** Two well-separated blobs in `d` dimensions. */
function blobs(n: number, d: number): { data: Float64Array; n: number; d: number } {
  const data = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) data[i * d + j] = (i % 2) * 10 + Math.sin(i * 7 + j * 13);
  return { data, n, d };
}

const method: ClusterMethod = { k: 2, nInit: 2, seed: 0, assign: 'gmm', covariance: 'full', decCentres: false };

test('a full-covariance mixture over many dimensions (raw pixels) is fitted diagonal, and its name says so', async () => {
  const wide = await runClusterMethod('pixels', blobs(60, FULL_COVARIANCE_MAX_DIMS + 1), method, sink, undefined);
  assert.equal(wide.name, 'pixels+diag+gmm');
  assert.equal(new Set(wide.labels).size, 2);
  const narrow = await runClusterMethod('encoder', blobs(60, 4), method, sink, undefined);
  assert.equal(narrow.name, 'encoder+gmm');
});

test('--umap-context: UMAP and the assignment also see the context rows; only the clustered rows come back', async () => {
  const m: ClusterMethod = {
    k: 2,
    nInit: 2,
    seed: 0,
    assign: 'kmeans',
    covariance: 'full',
    decCentres: false,
    umap: { dims: 2, neighbors: 5, minDist: 0, seed: 0 },
  };
  const points = blobs(30, 4);
  const context = blobs(60, 4);
  const alone = await runClusterMethod('encoder', points, m, sink, undefined);
  const withCtx = await runClusterMethod('encoder', points, m, sink, undefined, context);
  assert.equal(withCtx.name, 'encoder+umap+kmeans');
  assert.equal(withCtx.labels.length, 30);
  assert.equal(withCtx.score.length, 30);
  // The context moved the layout, so the distances to the centres differ.
  assert.notDeepEqual([...withCtx.score], [...alone.score]);
  const g = await runClusterMethod('encoder', points, { ...m, assign: 'gmm' }, sink, undefined, context);
  assert.equal(g.labels.length, 30);
  assert.equal(g.score.length, 30);
  // Reproducible from the seed.
  assert.deepEqual([...(await runClusterMethod('encoder', points, m, sink, undefined, context)).score], [...withCtx.score]);
});

test('--umap-context is parsed into the UMAP step and refused without --manifold umap', () => {
  assert.equal(clusterMethodFromFlags({ manifold: 'umap', 'umap-context': '500' }, 10, 100, 0).umap?.context, 500);
  assert.equal(clusterMethodFromFlags({ manifold: 'umap' }, 10, 100, 0).umap?.context, undefined);
  assert.throws(
    () => clusterMethodFromFlags({ 'umap-context': '500' }, 10, 100, 0),
    (e: unknown) => e instanceof UsageError && /--umap-context applies to --manifold umap/.test(e.message),
  );
  assert.throws(() => clusterMethodFromFlags({ manifold: 'umap', 'umap-context': '0' }, 10, 100, 0), UsageError);
});
