import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { encodeShard, type DatasetManifest, type ImageSet } from '@cvc/data';
import { initBackend, tf } from '@cvc/tfjs-runtime';
import { embedImported } from './imported-input.js';

test('embedImported reads a shard of 300k records (no spread of its indices into a call), then embeds the --limit subset', async () => {
  await initBackend('cpu');
  const count = 300_000;
  const set: ImageSet = { count, height: 1, width: 1, channels: 1, images: new Uint8Array(count), labels: new Uint8Array(count).map((_, i) => i % 2) };
  const bytes = encodeShard(
    set,
    Int32Array.from({ length: count }, (_, i) => i),
    {},
  );
  const manifest = {
    shards: [{ name: 'test.cvcshard', split: 'test', sha256: createHash('sha256').update(bytes).digest('hex') }],
    classNames: ['a', 'b'],
  } as unknown as DatasetManifest;
  const encoder = tf.sequential({ layers: [tf.layers.flatten({ inputShape: [1, 1, 1] }), tf.layers.dense({ units: 2 })] });
  try {
    const out = await embedImported(encoder, { manifest, where: 'big', getBytes: () => Promise.resolve(bytes) }, { split: 'test', limit: 4, batchSize: 4 });
    assert.equal(out.paths.length, 4);
  } finally {
    encoder.dispose();
  }
});
