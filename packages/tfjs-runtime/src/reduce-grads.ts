import { backend_util, Mean, registerGradient, Sum, util, type GradConfig, type NamedAttrMap, type Tensor } from '@tensorflow/tfjs-core';
import { tf } from './tf.js';

/**
 * The gradient of a reduction: dy (divided by the count for Mean) broadcast
 * back over the reduced axes. tfjs-core's Sum and Mean gradients multiply dy
 * by a tensor of ones the size of the input, built in JavaScript on every
 * call (12 ms of a seed-mnist training step on wasm, for the batch-norm
 * moments); these scale the small dy and broadcast it once, with the same
 * values.
 */
function reduceGrad(kernelName: string, mean: boolean): GradConfig {
  return {
    kernelName,
    inputsToSave: ['x'],
    gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
      const [x] = saved as [Tensor];
      const axes = util.parseAxisParam(attrs['axis'] as number | number[], x.shape);
      const count = util.sizeFromShape(backend_util.computeOutAndReduceShapes(x.shape, axes)[1]);
      return {
        x: () => {
          const expanded = x.shape.slice();
          for (const a of axes) expanded[a] = 1;
          const small = tf.reshape(dy as Tensor, expanded);
          return tf.broadcastTo(mean ? tf.div(small, count) : small, x.shape);
        },
      };
    },
  };
}

let registered = false;

/** Registers the Sum and Mean gradients above for every backend (idempotent). */
export function registerReduceGradients(): void {
  if (registered) return;
  registered = true;
  registerGradient(reduceGrad(Sum, false));
  registerGradient(reduceGrad(Mean, true));
}
