// Picks the TensorFlow.js backend a worker trains on and says why, in one log line.
// Native backends (@tensorflow/tfjs-node[-gpu], libtensorflow) are optionalDependencies whose
// install downloads a binary, so they are often absent: they are imported dynamically and their
// absence is a reason for `auto` to fall back, but an error when asked for by name.
import * as tf from '@tensorflow/tfjs-core';
// Training needs gradients whichever backend runs; see the module for why it is needed.
import './register_gradients.js';

export type BackendRequest = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
/** Alias others import: the names a --backend option accepts. */
export type BackendName = BackendRequest;
export const BACKEND_REQUESTS: readonly BackendRequest[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

export interface SelectBackendOptions {
  gpuAssigned: boolean;
  log: (msg: string) => void;
}

export interface SelectedBackend {
  name: string;
  reason: string;
}

const NODE_GPU = '@tensorflow/tfjs-node-gpu';
const NODE_CPU = '@tensorflow/tfjs-node';

type NativeLoad = { ok: true } | { ok: false; why: string };

/** Imports a native package; tells "not installed" apart from "installed but broken". */
async function loadNative(pkg: string): Promise<NativeLoad> {
  try {
    await import(pkg); // registers backend 'tensorflow' as a side effect
    return { ok: true };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if ((e.code === 'ERR_MODULE_NOT_FOUND' || e.code === 'MODULE_NOT_FOUND') && e.message.includes(pkg))
      return { ok: false, why: `${pkg} is not installed` };
    return { ok: false, why: `${pkg} failed to load: ${e.message.split('\n')[0]}` };
  }
}


async function activate(name: string): Promise<void> {
  if (!(await tf.setBackend(name))) throw new Error(`backend '${name}' is registered but failed to initialise`);
  await tf.ready();
}

async function activateWasm(): Promise<void> {
  await import('@tensorflow/tfjs-backend-wasm');
  const { registerWasmTrainingKernels } = await import('./wasm_kernels/index.js');
  registerWasmTrainingKernels();
  await activate('wasm');
}

/**
 * Makes `requested` the active tfjs backend. `auto`: tfjs-node-gpu when installed and a GPU is
 * assigned, else tfjs-node when installed, else wasm (with the project's training kernels).
 * Logs exactly one line: which backend runs and, after a fallback, why.
 */
export async function selectBackend(requested: BackendRequest, opts: SelectBackendOptions): Promise<SelectedBackend> {
  if (!BACKEND_REQUESTS.includes(requested))
    throw new Error(`unknown backend '${String(requested)}': expected one of ${BACKEND_REQUESTS.join(', ')}`);
  let chosen: SelectedBackend;
  if (requested === 'cpu' || requested === 'wasm') {
    if (requested === 'cpu') {
      await import('@tensorflow/tfjs-backend-cpu');
      await activate('cpu');
    } else {
      await activateWasm();
    }
    chosen = { name: requested, reason: 'requested' };
  } else {
    const candidates = opts.gpuAssigned ? [NODE_GPU, NODE_CPU] : requested === 'auto' ? [NODE_CPU] : [NODE_CPU, NODE_GPU];
    const failures: string[] = [];
    if (requested === 'auto' && !opts.gpuAssigned) failures.push(`no GPU assigned, ${NODE_GPU} not tried`);
    let loaded: string | undefined;
    for (const pkg of candidates) {
      const result = await loadNative(pkg);
      if (result.ok) { loaded = pkg; break; }
      failures.push(result.why);
    }
    if (loaded) {
      await activate('tensorflow');
      chosen = { name: 'tensorflow', reason: requested === 'auto' ? `auto: ${loaded}` : `requested, via ${loaded}` };
    } else if (requested === 'tensorflow') {
      throw new Error(`backend 'tensorflow' cannot load (${failures.join('; ')}): install it with ` +
        `\`npm install ${NODE_CPU}\` (CPU) or \`npm install ${NODE_GPU}\` (CUDA GPU), or choose backend 'wasm'`);
    } else {
      await activateWasm();
      chosen = { name: 'wasm', reason: failures.join('; ') };
    }
  }
  opts.log(`backend: ${chosen.name} (${chosen.reason})`);
  return chosen;
}
