// The two ways the wasm training kernels fail, told apart because only one is the user's to act on.
import { HardnetError } from '../../../shared/errors.js';

/** The kernels cannot run on this tfjs-backend-wasm (its build, its exports or its heap): a failure of the run. */
export class WasmKernelError extends HardnetError {
  readonly exitCode: number = 1;
}

/**
 * A kernel was called with what it does not implement (a dtype, layout, shape or attribute the model never sends):
 * a bug in the caller, which the worker's top level names as internal with this class.
 */
export class KernelInvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KernelInvariantError';
  }
}
