/**
 * With GPUs assigned, a job trains on them or does not start: the launcher refuses, before any worker runs, a
 * train/eval whose backend would fall back to the CPU because @tensorflow/tfjs-node-gpu is not installed (its
 * install downloads libtensorflow and CUDA bindings, and fails quietly as an optional dependency). A user whose
 * install failed would otherwise train ImageNet on WebAssembly at a few images per second without noticing.
 * Choosing the CPU stays possible on purpose: backend wasm or cpu, or use_gpu: False.
 *
 * The decision is a pure function of what it is given; `checkGpuBackend` gathers those facts for the CLI.
 * The worker checks again (worker/backend/select.ts), and also catches a tfjs-node-gpu that loads but finds no GPU.
 */
import { createRequire } from 'node:module';
import { Command } from 'commander';
import { applySpec, commandSpec } from '../shared/commands.js';
import { loadConfig, type Backend } from '../shared/config.js';
import { LaunchError } from './plan.js';

export const NODE_GPU_PACKAGE = '@tensorflow/tfjs-node-gpu';
/** what libtensorflow 2.9.1, which tfjs-node-gpu 4.22 downloads, is built against */
export const CUDA_NEEDS = 'CUDA 11.2 and cuDNN 8.1';

export interface GpuBackendFacts {
  /** GPU ids the workers get; null or empty: CPU workers */
  gpus: readonly string[] | null;
  backend: Backend;
  useGpu: boolean;
  /** whether a package resolves from the worker's installation */
  resolves: (pkg: string) => boolean;
}

/** Why the job must not start, or undefined when it may. */
export function gpuBackendRefusal(f: GpuBackendFacts): string | undefined {
  if (!f.gpus || f.gpus.length === 0) return undefined;
  if (!f.useGpu || f.backend === 'wasm' || f.backend === 'cpu') return undefined; // the CPU on purpose
  if (f.resolves(NODE_GPU_PACKAGE)) return undefined;
  return (
    `GPU ${f.gpus.join(',')} assigned, but ${NODE_GPU_PACKAGE} is not installed: backend '${f.backend}' would train on ` +
    `the CPU. Install it with \`npm install ${NODE_GPU_PACKAGE}\` (libtensorflow 2.9.1, needs ${CUDA_NEEDS}), or run on ` +
    `the CPU on purpose with -o backend=wasm (or -o use_gpu=False)`
  );
}

/** Resolves packages as the worker's `import()` does: from this installation's node_modules. */
export function resolvesHere(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

/**
 * The CLI's check for `launch <command> [args]`: train and eval read the config's backend and use_gpu (with the
 * -o overrides) and throw a LaunchError (exit 2) when gpuBackendRefusal says no. A config that does not load is
 * left to the usual path, which reports it.
 */
export function checkGpuBackend(
  command: string,
  args: string[],
  gpus: readonly string[] | null,
  resolves = resolvesHere,
): void {
  if (!gpus || gpus.length === 0 || (command !== 'train' && command !== 'eval')) return;
  const spec = commandSpec(command)!;
  let backend: Backend;
  let useGpu: boolean;
  try {
    const cmd = applySpec(new Command(command), spec)
      .exitOverride()
      .configureOutput({ writeErr: () => {}, writeOut: () => {} });
    cmd.parse(args, { from: 'user' });
    const o = cmd.opts<{ config?: string; override?: string[] }>();
    const cfg = loadConfig(o.config, o.override ?? [], {
      warn: () => {},
      mode: command === 'eval' ? 'valid' : undefined,
    });
    backend = cfg.backend;
    useGpu = cfg.use_gpu;
  } catch {
    return;
  }
  const refusal = gpuBackendRefusal({ gpus, backend, useGpu, resolves });
  if (refusal) throw new LaunchError(refusal);
}
