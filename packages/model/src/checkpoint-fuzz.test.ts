// A checkpoint comes back from S3 to a worker (resume) and to the coordinator
// (encoder export): whatever its bytes, decoding gives the state or a
// ModelError, never another exception. The checksum catches random damage;
// the header is validated too, since a buggy writer can hash anything.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createRng } from '@cvc/core';
import { decodeCheckpoint, encodeCheckpoint, type TrainingState } from './checkpoint.js';
import { ModelError } from './errors.js';
import { resolveTrainConfig } from './spec.js';

const state: TrainingState = {
  config: resolveTrainConfig({ model: 'seed-mnist', epochs: 3 }),
  epochsDone: 1,
  bnSteps: 10,
  history: [{ epoch: 1, loss: 0.2, valLoss: 0.25, valMse: 0.25, seconds: 1, imagesPerSec: 100 }],
  best: { epoch: 1, valLoss: 0.25, bnSteps: 10, weights: [{ name: 'w', shape: [2, 3], dtype: 'float32', values: new Float32Array(6).fill(0.5) }] },
  weights: [
    { name: 'w', shape: [2, 3], dtype: 'float32', values: Float32Array.from([1, 2, 3, 4, 5, 6]) },
    { name: 'b', shape: [3], dtype: 'float32', values: Float32Array.from([7, 8, 9]) },
  ],
  optimizer: [{ name: 'iter', shape: [], dtype: 'int32', values: Int32Array.from([10]) }],
};
const good = encodeCheckpoint(state);

/** Re-encodes with a rewritten header and a valid checksum, as a buggy writer would. */
function withHeader(edit: (h: Record<string, unknown>) => unknown): Uint8Array {
  const dv = new DataView(good.buffer, good.byteOffset, good.byteLength);
  const len = dv.getUint32(8, true);
  const header = JSON.parse(new TextDecoder().decode(good.subarray(12, 12 + len))) as Record<string, unknown>;
  const edited = edit(header);
  const json = JSON.stringify(edited === undefined ? header : edited);
  const text = new TextEncoder().encode(json + ' '.repeat((4 - ((12 + json.length) % 4)) % 4));
  const payload = good.subarray(12 + len, good.length - 32);
  const body = new Uint8Array(12 + text.length + payload.length);
  body.set(good.subarray(0, 8));
  new DataView(body.buffer).setUint32(8, text.length, true);
  body.set(text, 12);
  body.set(payload, 12 + text.length);
  return new Uint8Array([...body, ...createHash('sha256').update(body).digest()]);
}

test('checkpoint decoding: the good one round-trips; random damage is always a ModelError', () => {
  const back = decodeCheckpoint(good, 'ok.ckpt');
  assert.deepEqual(Array.from(back.weights[0]?.values ?? []), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(
    withHeader((h) => h),
    good,
    'the re-encoder is faithful',
  );
  const rng = createRng(21);
  for (let i = 0; i < 2000; i++) {
    const b = Uint8Array.from(good);
    const kind = rng.int(3);
    let bytes = b;
    if (kind === 0) bytes = b.subarray(0, rng.int(b.length));
    else if (kind === 1) {
      const j = rng.int(b.length);
      b[j] = (b[j] ?? 0) ^ (1 + rng.int(255));
    } else bytes = Uint8Array.from({ length: rng.int(400) }, () => rng.int(256));
    assert.throws(
      () => decodeCheckpoint(bytes, 'x.ckpt'),
      (e: unknown) => e instanceof ModelError && e.message.startsWith('x.ckpt: '),
      `case ${i}`,
    );
  }
});

test('checkpoint decoding: a valid checksum over a malformed header is still refused, naming the problem', () => {
  type T = { tensors: Record<string, unknown>[] };
  const cases: [string, (h: Record<string, unknown>) => unknown, RegExp][] = [
    ['tensors not a list', (h) => ({ ...h, tensors: 'nope' }), /malformed header: tensors/],
    ['negative offset', (h) => void ((h as T).tensors[0]!['offset'] = -4), /tensors\.0\.offset/],
    ['unaligned offset', (h) => void ((h as T).tensors[0]!['offset'] = 2), /4-byte aligned/],
    ['offset past the end', (h) => void ((h as T).tensors[1]!['offset'] = 1 << 30), /runs past the end/],
    ['huge length', (h) => void ((h as T).tensors[0]!['length'] = 2 ** 31), /shape \[2, 3\] but 2147483648 values|runs past the end/],
    ['fractional length', (h) => void ((h as T).tensors[0]!['length'] = 2.5), /tensors\.0\.length/],
    ['shape and length disagree', (h) => void ((h as T).tensors[0]!['shape'] = [4, 4]), /shape \[4, 4\] but 6 values/],
    ['unknown dtype', (h) => void ((h as T).tensors[0]!['dtype'] = 'float64'), /tensors\.0\.dtype/],
    ['unknown group', (h) => void ((h as T).tensors[0]!['group'] = 'other'), /tensors\.0\.group/],
    ['unknown model', (h) => ({ ...h, config: { ...(h['config'] as object), model: 'vgg' } }), /config\.model/],
    ['negative epochs done', (h) => ({ ...h, epochsDone: -1 }), /epochsDone/],
    ['history not a list', (h) => ({ ...h, history: {} }), /history/],
    ['null header', () => null, /malformed header/],
  ];
  for (const [what, edit, re] of cases) {
    assert.throws(
      () => decodeCheckpoint(withHeader(edit), 'bad.ckpt'),
      (e: unknown) => e instanceof ModelError && re.test(e.message),
      what,
    );
  }
  // A header length field that points past the end.
  const b = Uint8Array.from(good);
  new DataView(b.buffer).setUint32(8, 1 << 30, true);
  const body = b.subarray(0, b.length - 32);
  b.set(createHash('sha256').update(body).digest(), b.length - 32);
  assert.throws(() => decodeCheckpoint(b, 'bad.ckpt'), /header length .* runs past the end/);
});
