import { CvcError } from '@cvc/core';

/** What failed in the compute runtime: loading a backend, or one of cvc's wasm kernels. */
export type RuntimeErrorCode = 'BACKEND_INIT' | 'BACKEND_UNAVAILABLE' | 'WASM_CONV';

/** A compute backend could not be loaded or a kernel failed. */
export class RuntimeError extends CvcError<RuntimeErrorCode> {}
