import { tf } from '@cvc/tfjs-runtime';
import type { Activation } from './model-config.js';

/**
 * Nearest-neighbour up-sampling by `s` followed by a stride-1 'same' k x k
 * convolution, computed on the small map.
 *
 * Every s x s block of the up-sampled map repeats one input pixel, so output
 * pixel (s*m + r) only ever reads input rows m + floor((r + d - p) / s) for
 * its taps d = 0..k-1 (p = floor((k - 1) / 2), TensorFlow's 'same' padding):
 * taps that land on the same input pixel can be summed into one. Doing that
 * for all s*s output phases gives one convolution of the small map with a
 * (ke x ke) kernel of s*s*F output channels, whose channels are then
 * interleaved back into the large map (a depth-to-space). For the seed
 * decoders' 7x7 and 5x5 convolutions after a 2x up-sampling that is 5x5 and
 * 3x3 taps instead of 49 and 25 per output, about 2x and 2.8x fewer
 * multiply-adds, forward and in both gradients, with the same result up to
 * float rounding. The layer holds exactly the weights of the Conv2D it
 * replaces (`kernel` [k, k, C, F] and `bias` [F], same names, same
 * initialiser), so checkpoints and initial weights are unchanged.
 */
export interface UpConvPlan {
  /** Up-sampling factor. */
  readonly s: number;
  /** Kernel size of the original convolution. */
  readonly k: number;
  /** Lowest and highest input-row offset any phase reads. */
  readonly lo: number;
  readonly hi: number;
  /** Taps of the combined kernel per axis: hi - lo + 1. */
  readonly ke: number;
  /** (ke*ke*s*s) x (k*k) 0/1 matrix: combined tap (oy, ox, ry, rx) sums original taps (dy, dx). */
  readonly gather: Float32Array;
  /**
   * Per phase r: its own offsets lo..hi. Where phases read fewer offsets
   * than ke (7x7 after 2x: 4 of 5), one convolution per phase pair (ry, rx)
   * with its own (hi - lo + 1)^2 kernel skips the combined kernel's zeros.
   */
  readonly phases: readonly { readonly lo: number; readonly hi: number }[];
  /** 'combined': one convolution with s*s*F channels; 'phases': s*s convolutions of F channels. */
  readonly mode: 'combined' | 'phases';
  /** 'phases' mode: each phase pair's (ky*kx) x (k*k) 0/1 gather matrix, row-major over (ry, rx); built once per layer. */
  readonly phaseGathers: readonly { readonly data: Float32Array; readonly ky: number; readonly kx: number }[];
}

/** The (ke_y*ke_x) x (k*k) 0/1 matrix of phase (ry, rx)'s own kernel: its tap (oy, ox) sums original taps (dy, dx). */
function phaseGather(s: number, k: number, phases: UpConvPlan['phases'], ry: number, rx: number): { data: Float32Array; ky: number; kx: number } {
  const p = Math.floor((k - 1) / 2);
  const off = (r: number, d: number): number => Math.floor((r + d - p) / s);
  const py = phases[ry] as { lo: number; hi: number };
  const px = phases[rx] as { lo: number; hi: number };
  const ky = py.hi - py.lo + 1;
  const kx = px.hi - px.lo + 1;
  const data = new Float32Array(ky * kx * k * k);
  for (let dy = 0; dy < k; dy++) for (let dx = 0; dx < k; dx++) data[((off(ry, dy) - py.lo) * kx + off(rx, dx) - px.lo) * k * k + dy * k + dx] = 1;
  return { data, ky, kx };
}

/** The combined-kernel plan for up-sampling by `s` then a k x k 'same' convolution. */
export function upConvPlan(s: number, k: number): UpConvPlan {
  if (!Number.isInteger(s) || s < 1 || !Number.isInteger(k) || k < 1) throw new RangeError(`upConvPlan: bad factor ${s} or kernel ${k}`);
  const p = Math.floor((k - 1) / 2);
  const off = (r: number, d: number): number => Math.floor((r + d - p) / s);
  let lo = Infinity;
  let hi = -Infinity;
  for (let r = 0; r < s; r++)
    for (let d = 0; d < k; d++) {
      lo = Math.min(lo, off(r, d));
      hi = Math.max(hi, off(r, d));
    }
  const ke = hi - lo + 1;
  const phases = Array.from({ length: s }, (_, r) => ({ lo: off(r, 0), hi: off(r, k - 1) }));
  const mode = phases.every((q) => q.hi - q.lo + 1 === ke) ? 'combined' : 'phases';
  const gather = new Float32Array(ke * ke * s * s * k * k);
  for (let oy = 0; oy < ke; oy++)
    for (let ox = 0; ox < ke; ox++)
      for (let ry = 0; ry < s; ry++)
        for (let rx = 0; rx < s; rx++) {
          const row = ((oy * ke + ox) * s + ry) * s + rx;
          for (let dy = 0; dy < k; dy++)
            for (let dx = 0; dx < k; dx++) if (off(ry, dy) === oy + lo && off(rx, dx) === ox + lo) gather[row * k * k + dy * k + dx] = 1;
        }
  const phaseGathers = mode === 'phases' ? Array.from({ length: s * s }, (_, i) => phaseGather(s, k, phases, Math.floor(i / s), i % s)) : [];
  return { s, k, lo, hi, ke, gather, phases, mode, phaseGathers };
}

/**
 * Whether computing the pair on the small map saves work: the combined
 * kernel has fewer taps per output than the original (7x7 and 5x5 after a
 * 2x up-sampling do; 3x3 and 1x1 do not).
 */
export function upConvSaves(s: number, k: number): boolean {
  return s > 1 && upConvPlan(s, k).ke < k;
}

function activate(y: tf.Tensor, a: Activation): tf.Tensor {
  switch (a) {
    case 'relu':
      return tf.relu(y);
    case 'sigmoid':
      return tf.sigmoid(y);
    case 'tanh':
      return tf.tanh(y);
    case 'elu':
      return tf.elu(y);
    case 'linear':
      return y;
  }
}

/** Up-sampling by `plan.s` then the k x k convolution, as one convolution on the small map (see UpConvPlan). */
export function upConv2d(x: tf.Tensor4D, kernel: tf.Tensor4D, bias: tf.Tensor1D | null, plan: UpConvPlan, activation: Activation): tf.Tensor4D {
  return tf.tidy(() => {
    const { s, k, lo, hi, ke } = plan;
    const [n, h, w] = x.shape;
    const [, , c, f] = kernel.shape;
    if (tf.getBackend() === 'tensorflow') {
      // tfjs-node (native TensorFlow, GPU or CPU): the separate ops, as Keras runs them (not every
      // tfjs-node kernel takes explicit padding, and cuDNN has fast paths of its own).
      const up = tf.image.resizeNearestNeighbor(x, [h * s, w * s]);
      const y = tf.conv2d(up, kernel, 1, 'same');
      return activate(bias === null ? y : tf.add(y, bias), activation) as tf.Tensor4D;
    }
    const flat = tf.reshape(kernel, [k * k, c * f]);
    let small: tf.Tensor;
    if (plan.mode === 'combined') {
      const gather = tf.tensor2d(plan.gather, [ke * ke * s * s, k * k]);
      // (ke, ke, s*s, C, F) -> (ke, ke, C, s*s, F): output channel (ry, rx, f).
      const combined = tf.reshape(tf.transpose(tf.reshape(tf.matMul(gather, flat), [ke, ke, s * s, c, f]), [0, 1, 3, 2, 4]), [ke, ke, c, s * s * f]);
      small = tf.conv2d(x, combined as tf.Tensor4D, 1, [
        [0, 0],
        [-lo, hi],
        [-lo, hi],
        [0, 0],
      ]);
    } else {
      const parts: tf.Tensor[] = [];
      for (let ry = 0; ry < s; ry++)
        for (let rx = 0; rx < s; rx++) {
          const g = plan.phaseGathers[ry * s + rx] as UpConvPlan['phaseGathers'][number];
          const wp = tf.reshape<tf.Rank.R4>(tf.matMul(tf.tensor2d(g.data, [g.ky * g.kx, k * k]), flat), [g.ky, g.kx, c, f]);
          const py = plan.phases[ry] as { lo: number; hi: number };
          const px = plan.phases[rx] as { lo: number; hi: number };
          parts.push(
            tf.conv2d(x, wp, 1, [
              [0, 0],
              [-py.lo, py.hi],
              [-px.lo, px.hi],
              [0, 0],
            ]),
          );
        }
      small = tf.concat(parts, 3); // (N, H, W, s*s*F), channel (ry, rx, f) as in the combined kernel
    }
    // (N*H, W, ry, rx, F) -> (N*H, ry, W, rx, F) = (N, H*s, W*s, F).
    let y: tf.Tensor = tf.reshape(tf.transpose(tf.reshape(small, [n * h, w, s, s, f]), [0, 2, 1, 3, 4]), [n, h * s, w * s, f]);
    if (bias !== null) y = tf.add(y, bias);
    return activate(y, activation) as tf.Tensor4D;
  });
}

interface UpConvArgs {
  readonly name: string;
  readonly filters: number;
  readonly kernelSize: number;
  readonly upsample: number;
  readonly activation: Activation;
  readonly kernelInitializer: tf.serialization.Serializable;
}

/**
 * The layer form of upConv2d: `nearest up-sampling by upsample` then
 * `conv2d(filters, kernelSize, stride 1, 'same', activation, bias)`, with the
 * Conv2D's weights (`kernel`, `bias`). build.ts uses it where upConvSaves.
 */
export class NearestUpConv2D extends tf.layers.Layer {
  static className = 'CvcNearestUpConv2D';
  private readonly args: UpConvArgs;
  private readonly plan: UpConvPlan;
  private kernel: tf.LayerVariable | null = null;
  private bias: tf.LayerVariable | null = null;

  constructor(args: UpConvArgs) {
    super({ name: args.name });
    // From a model's JSON (tf.models.modelFromJSON) the initialiser arrives as its {className, config}.
    this.args = { ...args, kernelInitializer: initializerFrom(args.kernelInitializer, args.name) };
    this.plan = upConvPlan(args.upsample, args.kernelSize);
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const channels = shape[3];
    if (typeof channels !== 'number') throw new Error(`${this.name}: the input's channel count must be known, got shape [${shape.join(', ')}]`);
    const k = this.args.kernelSize;
    this.kernel = this.addWeight('kernel', [k, k, channels, this.args.filters], 'float32', this.args.kernelInitializer as never, undefined, true);
    this.bias = this.addWeight('bias', [this.args.filters], 'float32', tf.initializers.zeros(), undefined, true);
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const [n, h, w] = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const s = this.args.upsample;
    return [n ?? null, h == null ? null : h * s, w == null ? null : w * s, this.args.filters];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
    if (this.kernel === null || this.bias === null) throw new Error(`${this.name}: called before build`);
    return upConv2d(x, this.kernel.read() as tf.Tensor4D, this.bias.read() as tf.Tensor1D, this.plan, this.args.activation);
  }

  override getConfig(): tf.serialization.ConfigDict {
    const { filters, kernelSize, upsample, activation, kernelInitializer } = this.args;
    return {
      ...super.getConfig(),
      filters,
      kernelSize,
      upsample,
      interpolation: 'nearest',
      activation,
      strides: 1,
      padding: 'same',
      kernelInitializer: { className: kernelInitializer.getClassName(), config: kernelInitializer.getConfig() },
    };
  }
}
tf.serialization.registerClass(NearestUpConv2D);

/** An initialiser object, or one rebuilt from the {className, config} that getConfig wrote. */
function initializerFrom(v: unknown, layer: string): tf.serialization.Serializable {
  if (v instanceof tf.serialization.Serializable) return v;
  const spec = v as { className?: unknown; config?: unknown } | null;
  const entry = typeof spec?.className === 'string' ? tf.serialization.SerializationMap.getMap().classNameMap[spec.className] : undefined;
  if (!entry) throw new Error(`${layer}: unknown kernel initializer ${JSON.stringify(v)}`);
  const [cls, fromConfig] = entry;
  return fromConfig(cls, (spec?.config ?? {}) as tf.serialization.ConfigDict);
}
