import { tf } from '@cvc/tfjs-runtime';
import type { NamedArray } from './checkpoint.js';

/** Names of the saved bias-correction powers in a state's optimizer list. */
export const ADAM_POWERS = 'adam/power-';

interface AdamPowers {
  accBeta1?: tf.Variable;
  accBeta2?: tf.Variable;
}

/**
 * Adam's running powers beta1^t and beta2^t. Its own setWeights recomputes
 * them with pow(), which differs from the running product in the last bits;
 * saving and restoring them keeps a resumed run on the same path as an
 * uninterrupted one.
 */
export function adamPowers(opt: tf.AdamOptimizer): NamedArray[] {
  const o = opt as unknown as AdamPowers;
  const out: NamedArray[] = [];
  for (const key of ['accBeta1', 'accBeta2'] as const) {
    const v = o[key];
    if (v instanceof tf.Variable)
      out.push({ name: `${ADAM_POWERS}${key}`, shape: [], dtype: 'float32', values: Float32Array.from(v.dataSync() as Float32Array) });
  }
  return out;
}

export function restoreAdamPowers(opt: tf.AdamOptimizer, saved: readonly NamedArray[]): void {
  const o = opt as unknown as AdamPowers;
  for (const key of ['accBeta1', 'accBeta2'] as const) {
    const v = o[key];
    const a = saved.find((x) => x.name === `${ADAM_POWERS}${key}`);
    if (v instanceof tf.Variable && a) {
      const t = tf.scalar(a.values[0] as number);
      v.assign(t);
      t.dispose();
    }
  }
}
