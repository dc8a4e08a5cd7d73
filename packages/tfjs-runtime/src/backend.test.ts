import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '@cvc/core';
import { initBackend, RuntimeError, tf, type BackendChoice } from './index.js';

async function nativeInstalled(): Promise<boolean> {
  for (const p of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      const spec: string = p;
      await import(spec);
      return true;
    } catch {
      // not installed
    }
  }
  return false;
}

test('auto falls back to wasm where the native packages are absent, and says which it chose', async () => {
  const info = await initBackend('auto');
  if (await nativeInstalled()) {
    assert.equal(info.name, 'tensorflow');
  } else {
    assert.equal(info.name, 'wasm');
    assert.equal(tf.getBackend(), 'wasm');
  }
});

test("'tensorflow' without a native package fails with a clear error", async (t) => {
  if (await nativeInstalled()) {
    t.diagnostic('a native package is installed here; checking that it loads instead');
    assert.equal((await initBackend('tensorflow')).name, 'tensorflow');
    return;
  }
  await assert.rejects(initBackend('tensorflow'), (e: unknown) => e instanceof RuntimeError && /tfjs-node-gpu or @tensorflow\/tfjs-node/.test(e.message));
});

test('cpu and wasm can be chosen; an unknown name is a config error', async () => {
  assert.equal((await initBackend('cpu')).name, 'cpu');
  assert.equal((await initBackend('wasm')).name, 'wasm');
  await assert.rejects(initBackend('gpu' as BackendChoice), (e: unknown) => e instanceof ConfigError && /auto, tensorflow, wasm, cpu/.test(e.message));
});
