import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from './index.js';
import { captureEnv } from './testing.js';

test('cvc local up --nats-nodes outside 1..5 is a usage error naming the flag, before anything starts', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-local-cmd-'));
  try {
    for (const bad of ['0', '6']) {
      const env = captureEnv(dir);
      assert.equal(await main(['local', 'up', '--dir', join(dir, 'local'), '--workers', '0', '--nats-nodes', bad], env), 2);
      assert.match(env.err(), new RegExp(`--nats-nodes must be 1\\.\\.5 \\(3 survives losing one\\), got ${bad}`));
    }
    const env = captureEnv(dir);
    assert.equal(await main(['local', 'up', '--dir', join(dir, 'local'), '--nats-nodes', 'three'], env), 2);
    assert.match(env.err(), /--nats-nodes must be an integer, got 'three'/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
