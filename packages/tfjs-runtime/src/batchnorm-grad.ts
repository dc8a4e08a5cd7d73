import { broadcast_util, FusedBatchNorm, registerGradient, type GradConfig, type NamedAttrMap, type Tensor } from '@tensorflow/tfjs-core';
import { tf } from './tf.js';

/**
 * The gradient of FusedBatchNorm with respect to each of its inputs (x, mean,
 * variance, scale, offset), treating mean and variance as inputs, exactly as
 * tfjs-core's own gradient does, but with broadcasting instead of Tile and
 * with the two channel reductions shared:
 *   r = rsqrt(var + eps), s1 = sum(dy), s2 = sum(dy * (x - mean))
 *   dx = dy * scale * r          dmean = -scale * r * s1
 *   dvar = -0.5 * scale * r^3 * s2   dscale = r * s2   doffset = s1
 * tfjs-core's version tiles r to the full activation shape (the largest
 * single cost of a seed-mnist training step on wasm) and reduces three times.
 */
const fusedBatchNormGrad: GradConfig = {
  kernelName: FusedBatchNorm,
  inputsToSave: ['x', 'mean', 'variance', 'scale'],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const g = dy as Tensor;
    const [x, mean, variance, scale] = saved as [Tensor, Tensor, Tensor, Tensor | undefined];
    const eps = attrs['varianceEpsilon'] as number;
    const axes = broadcast_util.getReductionAxes(mean.shape, x.shape);
    const reduce = (t: Tensor): Tensor => (axes.length > 0 ? tf.reshape(tf.sum(t, axes), mean.shape) : t);
    const scaleValue = scale ?? tf.scalar(1);
    const r = tf.rsqrt(tf.add(variance, eps));
    const scaleR = tf.mul(scaleValue, r);
    // Shared by several inputs' gradients, so computed here: the engine runs
    // each input's closure in its own tidy scope, which would dispose a
    // tensor cached by one closure before another used it.
    const s1 = reduce(g);
    const s2 = reduce(tf.mul(g, tf.sub(x, mean)));
    return {
      x: () => tf.mul(g, scaleR),
      mean: () => tf.neg(tf.mul(scaleR, s1)),
      variance: () => tf.mul(tf.mul(scaleR, tf.mul(tf.square(r), -0.5)), s2),
      scale: () => tf.mul(r, s2),
      offset: () => tf.clone(s1),
    };
  },
};

let registered = false;

/** Replaces tfjs-core's FusedBatchNorm gradient (all backends; idempotent). */
export function registerBatchNormGradient(): void {
  if (registered) return;
  registered = true;
  const warn = console.warn;
  // tfjs warns when a gradient is overridden; this override is deliberate.
  console.warn = () => {};
  try {
    registerGradient(fusedBatchNormGrad);
  } finally {
    console.warn = warn;
  }
}
