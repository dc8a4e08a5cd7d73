import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { FULL_COVARIANCE_MAX_DIMS, runClusterMethod, type ClusterMethod } from './cluster-methods.js';

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
