// Picks the TensorFlow.js backend a worker trains on and says why, in one log line.
// Native backends (@tensorflow/tfjs-node[-gpu], libtensorflow) are optionalDependencies whose
// install downloads a binary, so they are often absent: they are imported dynamically and, without
// a GPU, their absence is a reason for `auto` to fall back; with a GPU assigned, or asked for by
// name, it is an error.
import * as tf from '@tensorflow/tfjs-core';
import { UsageError } from '../../shared/errors.js';
// Training needs gradients whichever backend runs; see the module for why it is needed.
import './register_gradients.js';

export type BackendRequest = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
/** Alias others import: the names a --backend option accepts. */
export type BackendName = BackendRequest;
export const BACKEND_REQUESTS: readonly BackendRequest[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

export interface SelectBackendOptions {
  /** this worker was given a GPU (CUDA_VISIBLE_DEVICES) and the config asks for one (use_gpu) */
  gpuAssigned: boolean;
  log: (msg: string) => void;
  /** for errors: which worker */
  rank?: number;
  /** the worker's CUDA_VISIBLE_DEVICES, for errors and the log line */
  visibleDevices?: string;
  /** how to import a native package (tests pass a fake); default: import() */
  importPackage?: (pkg: string) => Promise<unknown>;
}

export interface SelectedBackend {
  name: string;
  reason: string;
  /** what computes: 'GPU (...)', 'CPU (...)' */
  device: string;
}

export const NODE_GPU = '@tensorflow/tfjs-node-gpu';
export const NODE_CPU = '@tensorflow/tfjs-node';
/** libtensorflow 2.9.1 (tfjs-node 4.22's scripts/deps-constants.js) is built against these */
export const CUDA_REQUIREMENT = 'CUDA 11.2 and cuDNN 8.1';

/**
 * A worker that was given a GPU cannot use it: it stops instead of training on the CPU unnoticed. A usage error
 * (exit 2), like the launcher's own check before any worker starts (launcher/gpu_backend.ts): the installation or
 * the CUDA libraries have to change, so the agent does not restart the worker into the same failure.
 */
export class GpuUnavailableError extends UsageError {
  constructor(
    message: string,
    readonly rank: number | undefined,
  ) {
    super(message);
  }
}

type NativeLoad = { ok: true } | { ok: false; why: string };

/** Imports a native package; tells "not installed" apart from "installed but broken". */
async function loadNative(pkg: string, importPackage: (pkg: string) => Promise<unknown>): Promise<NativeLoad> {
  try {
    await importPackage(pkg); // registers backend 'tensorflow' as a side effect
    return { ok: true };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if ((e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'MODULE_NOT_FOUND') && e.message.includes(pkg))
      return { ok: false, why: `${pkg} is not installed` };
    return { ok: false, why: `${pkg} failed to load: ${e.message.split('\n')[0]}` };
  }
}

// A backend that is not installed, does not load or does not initialise is a usage error (exit 2) like a missing
// GPU package: a restart meets the same installation, and the message says what to install or choose instead.
async function activate(name: string): Promise<void> {
  if (!(await tf.setBackend(name))) throw new UsageError(`backend '${name}' is registered but failed to initialise`);
  await tf.ready();
}

async function activateWasm(): Promise<void> {
  await import('@tensorflow/tfjs-backend-wasm');
  const { registerWasmTrainingKernels } = await import('./wasm_kernels/index.js');
  registerWasmTrainingKernels();
  await activate('wasm');
}

/**
 * Makes `requested` the active tfjs backend. `auto`: with a GPU assigned, tfjs-node-gpu and nothing else (a GPU
 * job that silently trained on the CPU would run at a fraction of the speed unnoticed); without one, tfjs-node
 * when installed, else wasm (with the project's training kernels). 'tensorflow' likewise takes only tfjs-node-gpu
 * when a GPU is assigned. Logs exactly one line: which backend runs, on which device, and after a fallback why.
 */
export async function selectBackend(requested: BackendRequest, opts: SelectBackendOptions): Promise<SelectedBackend> {
  if (!BACKEND_REQUESTS.includes(requested))
    throw new UsageError(`unknown backend '${String(requested)}': expected one of ${BACKEND_REQUESTS.join(', ')}`);
  const importPackage = opts.importPackage ?? ((pkg: string) => import(pkg));
  const who = `rank ${opts.rank ?? 0}`;
  const cuda = `CUDA_VISIBLE_DEVICES=${opts.visibleDevices ?? process.env.CUDA_VISIBLE_DEVICES ?? '(unset)'}`;
  let chosen: SelectedBackend;
  if (requested === 'cpu' || requested === 'wasm') {
    if (requested === 'cpu') {
      await import('@tensorflow/tfjs-backend-cpu');
      await activate('cpu');
    } else {
      await activateWasm();
    }
    const gpuNote = opts.gpuAssigned
      ? `, on purpose: a GPU is assigned (${cuda}) but backend '${requested}' was asked for`
      : '';
    chosen = {
      name: requested,
      reason: 'requested',
      device: `CPU (${requested === 'wasm' ? 'WebAssembly' : 'JavaScript'}${gpuNote})`,
    };
  } else if (opts.gpuAssigned) {
    const result = await loadNative(NODE_GPU, importPackage);
    if (!result.ok) {
      throw new GpuUnavailableError(
        `${who}: a GPU is assigned (${cuda}) but ${result.why}; backend '${requested}' does not fall back ` +
          `to the CPU. Install it with \`npm install ${NODE_GPU}\` (needs ${CUDA_REQUIREMENT}), ` +
          'or train on the CPU on purpose with -o backend=wasm or -o use_gpu=False',
        opts.rank,
      );
    }
    await activate('tensorflow');
    // tfjs-node's NodeJSKernelBackend sets isUsingGpuDevice from the binding: whether TensorFlow registered a GPU
    const native = tf.backend() as unknown as { isUsingGpuDevice?: boolean };
    if (native.isUsingGpuDevice !== true) {
      throw new GpuUnavailableError(
        `${who}: ${NODE_GPU} loaded but TensorFlow found no usable GPU (${cuda}); it would ` +
          `train on the CPU. Likely cause: the CUDA libraries cannot be loaded or do not match (libtensorflow ` +
          `2.9.1 needs ${CUDA_REQUIREMENT}; check LD_LIBRARY_PATH and nvidia-smi, and run with ` +
          "TF_CPP_MIN_LOG_LEVEL=0 to see TensorFlow's own reason), or the device id is not visible to this process",
        opts.rank,
      );
    }
    chosen = {
      name: 'tensorflow',
      reason: requested === 'auto' ? `auto: ${NODE_GPU}` : `requested, via ${NODE_GPU}`,
      device: `GPU (${cuda})`,
    };
  } else {
    const candidates = requested === 'auto' ? [NODE_CPU] : [NODE_CPU, NODE_GPU];
    const failures: string[] = [];
    if (requested === 'auto') failures.push(`no GPU assigned, ${NODE_GPU} not tried`);
    let loaded: string | undefined;
    for (const pkg of candidates) {
      const result = await loadNative(pkg, importPackage);
      if (result.ok) {
        loaded = pkg;
        break;
      }
      failures.push(result.why);
    }
    if (loaded) {
      await activate('tensorflow');
      chosen = {
        name: 'tensorflow',
        reason: requested === 'auto' ? `auto: ${loaded}` : `requested, via ${loaded}`,
        device: 'CPU (libtensorflow)',
      };
    } else if (requested === 'tensorflow') {
      throw new UsageError(
        `backend 'tensorflow' cannot load (${failures.join('; ')}): install it with ` +
          `\`npm install ${NODE_CPU}\` (CPU) or \`npm install ${NODE_GPU}\` (CUDA GPU), or choose backend 'wasm'`,
      );
    } else {
      await activateWasm();
      chosen = { name: 'wasm', reason: failures.join('; '), device: 'CPU (WebAssembly)' };
    }
  }
  opts.log(`backend: ${chosen.name} on ${chosen.device} (${chosen.reason})`);
  return chosen;
}
