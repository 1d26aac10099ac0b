// Identity for 'wasm' without a copy. tfjs clones every tensor a gradient saves (engine.clone runs Identity),
// and the stock wasm Identity copies the whole buffer each time: hundreds of activation-sized copies per HarDNet68
// step. tfjs tensors' buffers are immutable (Variable.assign swaps dataIds), so sharing the buffer with a
// reference count is safe; tfjs-backend-cpu's Identity and wasm's own Reshape do exactly this.
import { Identity, type KernelConfig, type NamedTensorInfoMap, type TensorInfo } from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { requireInput } from './tensors.js';

function identity(args: { inputs: NamedTensorInfoMap; backend: unknown }): TensorInfo {
  const x = requireInput(args.inputs, 'x', Identity);
  (args.backend as BackendWasm).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

export const identityConfig: KernelConfig = {
  kernelName: Identity,
  backendName: 'wasm',
  kernelFunc: identity as unknown as KernelConfig['kernelFunc'],
};
