export { tf } from './tf.js';
export { initBackend, BACKEND_CHOICES, type BackendChoice, type BackendInfo, type BackendOptions } from './backend.js';
export { registerWasmTrainingKernels, kernelPathCounts } from './wasm-kernels.js';
export { RuntimeError, type RuntimeErrorCode } from './errors.js';
export { poolPathCounts } from './wasm-maxpool-grad.js';
export { registerBatchNormGradient } from './batchnorm-grad.js';
export { selectWasmConv, wasmConvImpl, convPathCounts, WASM_CONV_CHOICES, type WasmConvChoice, type WasmConvImpl } from './wasm-conv.js';
export { smallKernelCounts } from './wasm-small-kernels.js';
export { registerReduceGradients } from './reduce-grads.js';
