import { tf } from '@cvc/tfjs-runtime';
import type { NamedArray } from './checkpoint.js';
import { ModelError } from './errors.js';

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

/**
 * Checks a saved Adam state against the variables it will train before
 * `setWeights` takes it: Adam matches its slots to the variables by position
 * (the iteration count, then a first moment per variable, then a second
 * moment per variable, in the order of minimize's `varList`, `vars` here), so a
 * state with a slot too few or too many, or of another shape, would train
 * with moments of other weights without a word, or fail deep in tfjs. Throws
 * ModelError CHECKPOINT_MISMATCH naming `source` and the slot.
 */
export function checkAdamSlots(vars: readonly tf.Variable[], saved: readonly NamedArray[], source: string): void {
  const slots = saved.filter((a) => !a.name.startsWith(ADAM_POWERS));
  if (slots.length === 0) return;
  // minimize(f, _, varList) hands Adam the gradients as a list in varList's order: the slots follow `vars`.
  const order = vars;
  // Before the first step Adam has no moments yet: the state is the iteration count alone.
  if (slots.length !== 1 && slots.length !== 1 + 2 * order.length) {
    throw new ModelError(
      'CHECKPOINT_MISMATCH',
      `${source}: the optimizer state has ${slots.length} values, training ${order.length} variables needs ${1 + 2 * order.length} (the iteration count and two moments each)`,
    );
  }
  for (let i = 1; i < slots.length; i++) {
    const a = slots[i] as NamedArray;
    const v = order[(i - 1) % order.length] as tf.Variable;
    if (a.dtype !== 'float32' || a.shape.length !== v.shape.length || a.shape.some((d, j) => d !== v.shape[j])) {
      throw new ModelError(
        'CHECKPOINT_MISMATCH',
        `${source}: optimizer slot ${i} (${a.name}) has shape [${a.shape.join(',')}], the variable it belongs to (${v.name}) has [${v.shape.join(',')}]`,
      );
    }
  }
}
