import { CvcError } from '@cvc/core';

/** What failed in the compute runtime: loading a backend, one of cvc's wasm kernels, or the thread pool that runs them. */
export type RuntimeErrorCode = 'BACKEND_INIT' | 'BACKEND_UNAVAILABLE' | 'WASM_CONV' | 'WASM_THREADS';

/** A compute backend could not be loaded or a kernel failed. */
export class RuntimeError extends CvcError<RuntimeErrorCode> {}
