import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { DataError, readTar } from './index.js';
import { encodeTar } from './testing.js';

const enc = new TextEncoder();
const tarCorrupt = (re: RegExp) => (e: unknown) => e instanceof DataError && e.code === 'TAR_CORRUPT' && re.test(e.message);

/** Rewrites a header's checksum after an edit, as a tar writer would. */
function reseal(tar: Uint8Array, at: number): void {
  const h = tar.subarray(at, at + 512);
  h.fill(0x20, 148, 156);
  const sum = h.reduce((a, b) => a + b, 0);
  h.set(enc.encode(sum.toString(8).padStart(6, '0') + '\0 '), 148);
}

test('tar headers are checked: a damaged header (checksum) and a size field that is not octal are TAR_CORRUPT naming the offset, never a wrong entry', () => {
  const files = [
    { name: 'cifar-10-batches-bin/data_batch_1.bin', data: new Uint8Array(1000).fill(7) },
    { name: 'b.txt', data: enc.encode('hello') },
  ];
  const good = encodeTar(files);
  assert.deepEqual(
    readTar(good, 'a.tar').map((e) => [e.name, e.data.length]),
    files.map((f) => [f.name, f.data.length]),
  );

  // One flipped bit in a name: before, the entry came out under another name.
  const flipped = Uint8Array.from(good);
  flipped[3] = (flipped[3] as number) ^ 0x01;
  assert.throws(() => readTar(flipped, 'a.tar'), tarCorrupt(/checksum.*offset 0/));

  // A size field with a non-octal digit (checksum made to match): before, parseInt read its prefix, a wrong size.
  const garbled = Uint8Array.from(good);
  garbled.set(enc.encode('0000000176x\0'), 124);
  reseal(garbled, 0);
  assert.throws(() => readTar(garbled, 'a.tar'), tarCorrupt(/size field.*offset 0/));
});

/**
 * Real archives of short.txt ('short') and a 120-character folder's data_batch_1.bin ('batch one'), gzipped, base64:
 * `tar --format=pax`, `tar --format=gnu` (GNU tar 1.34) and Python 3.11's tarfile with PAX_FORMAT.
 */
const REAL_TARS = {
  'GNU tar --format=pax':
    'H4sIAAAAAAACA+3WsW6DMBAGYM95Cl4AuLMdOx2yd+wbRA64gqEhMq7E49dlqWSpTSullpL832LEDdgcv46mfXHLs3e9D3M7D1OITVyiuCpKjNbrmuQrkdVf15/3WbKyolpEAe9zdCE9XjwmRZWL45vfs30ybIzdyUZbI7c6tWWTqt33VQE3758i/7f80zbPv2USFZXMf5imH9/BpXp+uFvqP2LwsLrx1YWaqT662A1+ro/jqe2v61L+lc7mv2KyCvO/BDa76uzisC/xIfxa27voDutODtyknWzwn3K/+SfmLP+apMT8L2FtezWdPKIAAAAAAAAAAAAAAABwFz4ASNFE1wAoAAA=',
  'GNU tar --format=gnu':
    'H4sIAAAAAAACA+3VSw6CMBSF4S6lG+BRXk5dAHsg5aEQE5pATVy+lZEykBEQ9P8mt2knN7057diawfr2YcV6QidLkqk68+qkb2u3r1SiQiFDsYH7aPUgpRiM+XoHS+cHNb7mL/Cv/MAPzrnpr3nX33bKfxSf5vnP3JMgc/K/uqq76MFToVdqW7XN6JVdH9Q7CWptdTF1UijfdUI+f2H+i/+/Up/5j6M0ivj/tzCNXZq+IQoAAAAAAAAAAAAAcGhP2y5iiAAoAAA=',
  'python tarfile PAX_FORMAT':
    'H4sIAAAAAAACA+3WsW7DIBQFUOZ8BT9gzAPzSIdIHTv2DyISU9lD4gpTyZ9fkg5VhzSTnTa5Z8EyA8hPV9eqVvXza5heYmhjErPQXy6tWlv7/Xx6T9oQCTmJBXyMOaRyvHhMxstD7g9xQ/6JidmvjWo8G9esBNy/sRtSVnnKM55xCjU3zeX8ayfIWW3ZGfJc8k+OvJB6yfynYfj1G1zb/8/zRwwelvoD/V+Sj/6/EeK1fA+52+z7t5Aq0tUu5H0Xx2rXH+v2Ruo25LA932RLqtxkhf+UeSwx9qv9X8L+o/+tYUvo/yWcxy6HY0QUAAAAAAAAAAAAAAAA7sIn7ATKCQAoAAA=',
};

test('names over 100 characters come from the pax path record (x header) or the GNU L entry, whole', () => {
  const long = `cifar-10-batches-bin/${'d'.repeat(120)}/data_batch_1.bin`;
  for (const [tool, b64] of Object.entries(REAL_TARS)) {
    const entries = readTar(gunzipSync(Buffer.from(b64, 'base64')), `${tool}.tar`);
    assert.deepEqual(
      entries.map((e) => [e.name, Buffer.from(e.data).toString()]),
      [
        ['short.txt', 'short'],
        [long, 'batch one'],
      ],
      tool,
    );
  }
  // A pax record whose length runs past its header is TAR_CORRUPT, not a misread name.
  const tar = gunzipSync(Buffer.from(REAL_TARS['python tarfile PAX_FORMAT'], 'base64'));
  const at = tar.indexOf('path=');
  assert.ok(at > 0);
  const lenAt = tar.lastIndexOf(' ', at) - 3;
  tar.set(enc.encode('999'), lenAt);
  assert.throws(() => readTar(tar, 'bad.tar'), tarCorrupt(/pax header at offset \d+ has a malformed record/));
});
