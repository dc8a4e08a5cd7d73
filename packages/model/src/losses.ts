import { tf } from '@cvc/tfjs-runtime';
import type { LossName } from './model-config.js';

/** Keras' epsilon: `bce` clips reconstructions to [eps, 1 - eps]. */
export const BCE_EPSILON = 1e-7;

/** Per-batch loss values, averaged over images. */
export interface LossParts {
  readonly loss: tf.Scalar;
  readonly mse: tf.Scalar;
  /** Mean cosine similarity between reconstruction and input (mse-cosine only). */
  readonly cosine?: tf.Scalar;
}

/**
 * `mse`: mean squared error over every pixel. `mse-cosine`: MSE + (1 - mean
 * cosine similarity per image), i.e. Keras' MSE plus CosineSimilarity loss
 * (-cos) plus one, as the seed's CIFAR notebook trained. Norms are clamped at
 * sqrt(1e-12) like Keras' l2_normalize. `bce`: binary cross-entropy
 * -mean(x log y + (1 - x) log(1 - y)), the reconstruction clipped to
 * [1e-7, 1 - 1e-7] as Keras does (pixels in [0, 1] are the targets).
 */
export function computeLoss(name: LossName, y: tf.Tensor, x: tf.Tensor): LossParts {
  const mse = tf.mean<tf.Scalar>(tf.squaredDifference(y, x));
  if (name === 'mse') return { loss: mse, mse };
  if (name === 'bce') {
    const yc = tf.clipByValue(y, BCE_EPSILON, 1 - BCE_EPSILON);
    const bce = tf.neg(tf.mean<tf.Scalar>(tf.add(tf.mul(x, tf.log(yc)), tf.mul(tf.sub(1, x), tf.log(tf.sub(1, yc))))));
    return { loss: bce, mse };
  }
  const batch = x.shape[0];
  const yf = tf.reshape(y, [batch, -1]);
  const xf = tf.reshape(x, [batch, -1]);
  const dot = tf.sum(tf.mul(yf, xf), 1);
  const ny = tf.sqrt(tf.maximum(tf.sum(tf.square(yf), 1), 1e-12));
  const nx = tf.sqrt(tf.maximum(tf.sum(tf.square(xf), 1), 1e-12));
  const cosine = tf.mean<tf.Scalar>(tf.div(dot, tf.mul(ny, nx)));
  const loss = tf.add<tf.Scalar>(mse, tf.sub(1, cosine));
  return { loss, mse, cosine };
}
