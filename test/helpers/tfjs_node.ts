/**
 * tfjs-node 4.22's own kernel JavaScript, run without libtensorflow.
 *
 * test/fixtures/tfjs-node holds the package's dist/nodejs_kernel_backend.js and the kernel wrappers the model's
 * step, eval and infer dispatch (vendored, Apache-2.0; see its README). While `recordTfjsNode` is active, every
 * kernel the 'cpu' backend runs also runs through tfjs-node's wrapper of the same kernel name, with a real
 * NodeJSKernelBackend whose native `binding` is a recorder: it keeps the TensorFlow op name, attributes and inputs
 * each wrapper would hand to TFE_Execute, and answers with the cpu kernel's own outputs (so wrappers that compose
 * several ops see real values). The cpu backend computes the numbers; the record says what tfjs-node would have
 * asked TensorFlow, which tf_ops.ts then checks against TensorFlow 2.9's op registry.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import { REPO_ROOT } from './hardnet_fixture.js';

export const TFJS_NODE_DIR = path.join(REPO_ROOT, 'test/fixtures/tfjs-node');

/**
 * The binding constants tfjs-node reads (binding/tfjs_backend.cc exports TensorFlow's own enum values):
 * TF_DataType from tensorflow/c/tf_datatype.h, TF_AttrType from tensorflow/c/c_api.h.
 */
export const TF_DTYPE = {
  TF_FLOAT: 1,
  TF_INT32: 3,
  TF_UINT8: 4,
  TF_STRING: 7,
  TF_COMPLEX64: 8,
  TF_INT64: 9,
  TF_BOOL: 10,
  TF_RESOURCE: 20,
} as const;
export const TF_ATTR = {
  TF_ATTR_STRING: 0,
  TF_ATTR_INT: 1,
  TF_ATTR_FLOAT: 2,
  TF_ATTR_BOOL: 3,
  TF_ATTR_TYPE: 4,
  TF_ATTR_SHAPE: 5,
  TF_ATTR_TENSOR: 6,
  TF_ATTR_PLACEHOLDER: 7,
  TF_ATTR_FUNC: 8,
} as const;

export interface OpAttr {
  name: string;
  type: number;
  value: unknown;
}
export interface OpInput {
  shape: number[];
  dtype: string;
}
/** One TFE op a tfjs-node wrapper would execute. */
export interface RecordedOp {
  op: string;
  attrs: OpAttr[];
  inputs: OpInput[];
  numOutputs: number;
}
/** One kernel the step dispatched, and what tfjs-node made of it. */
export interface Dispatch {
  kernel: string;
  /** the TensorFlow ops tfjs-node's wrapper executed for it */
  ops: RecordedOp[];
  /** the wrapper threw, or tfjs-node registers no such kernel, or its outputs' shapes differ from the cpu kernel's */
  error?: string;
}

interface Registered {
  version: string;
  kernels: Record<string, { file: string; config: string }>;
}

type KernelFunc = (args: {
  inputs: tf.NamedTensorInfoMap;
  attrs?: tf.NamedAttrMap;
  backend: unknown;
}) => tf.TensorInfo | tf.TensorInfo[];
type KernelConfig = { kernelName: string; backendName: string; kernelFunc: KernelFunc };

/** What binding.executeOp is given and answers; the real one is tfjs_binding.node. */
class RecordingBinding {
  readonly calls: RecordedOp[] = [];
  /** inputs of the op being prepared (getInputTensorIds hands out indices into it) */
  pendingInputs: OpInput[] = [];
  constructor() {
    Object.assign(this, TF_DTYPE, TF_ATTR);
  }
  isUsingGpuDevice(): boolean {
    return true;
  }
  executeOp(
    op: string,
    attrs: OpAttr[],
    inputIds: number[],
    numOutputs: number,
  ): { id: number; shape: number[]; dtype: number }[] {
    this.calls.push({ op, attrs, inputs: inputIds.map((i) => this.pendingInputs[i]!), numOutputs });
    return Array.from({ length: numOutputs }, () => ({ id: -1, shape: [], dtype: TF_DTYPE.TF_FLOAT }));
  }
  createTensor(): number {
    throw new Error('binding.createTensor: not expected from a kernel wrapper in this test');
  }
  deleteTensor(): void {}
  tensorDataSync(): never {
    throw new Error('binding.tensorDataSync: a wrapper read a tensor back');
  }
}

interface Vendored {
  kernels: Map<string, KernelConfig>;
  registered: Registered;
  makeBackend: (binding: RecordingBinding) => FakeNodeBackend;
}
interface FakeNodeBackend {
  binding: RecordingBinding;
  realOutputs: tf.TensorInfo[];
}

let vendored: Vendored | undefined;

/** Loads the vendored JavaScript once; registers a (never active) 'tensorflow' backend: the wrappers look it up. */
function load(): Vendored {
  if (vendored) return vendored;
  const req = createRequire(path.join(TFJS_NODE_DIR, 'index.js'));
  const registered = JSON.parse(
    fs.readFileSync(path.join(TFJS_NODE_DIR, 'registered_kernels.json'), 'utf8'),
  ) as Registered;
  const kernels = new Map<string, KernelConfig>();
  for (const [name, where] of Object.entries(registered.kernels)) {
    if (!fs.existsSync(path.join(TFJS_NODE_DIR, where.file))) continue; // not vendored: reported when dispatched
    kernels.set(name, (req(`./${where.file}`) as Record<string, KernelConfig>)[where.config]!);
  }
  const { NodeJSKernelBackend } = req('./nodejs_kernel_backend.js') as {
    NodeJSKernelBackend: new (b: unknown, pkg: string) => object;
  };
  const makeBackend = (binding: RecordingBinding): FakeNodeBackend => {
    const backend = new NodeJSKernelBackend(binding, '@tensorflow/tfjs-node-gpu') as FakeNodeBackend &
      Record<string, unknown>;
    backend.realOutputs = [];
    // the wrappers' inputs are the cpu backend's tensors: stand for them by index, and record their shapes
    backend.getInputTensorIds = (tensors: tf.TensorInfo[]) => {
      binding.pendingInputs = tensors.map((t) => ({ shape: [...t.shape], dtype: t.dtype }));
      return tensors.map((_, i) => i);
    };
    // each op's outputs: copies of the cpu kernel's outputs, in order (a wrapper that composes ops still gets
    // values); outputs beyond the kernel's (FusedBatchNorm's batch statistics, which its wrapper drops) are empty
    backend.createOutputTensor = () => {
      const real = backend.realOutputs.shift();
      if (!real) return tf.tensor1d([], 'float32');
      const values = (
        tf.engine().backend as unknown as { readSync(id: object): tf.backend_util.BackendValues }
      ).readSync(real.dataId);
      return tf.tensor(values as Float32Array, real.shape, real.dtype);
    };
    // Identity's wrapper only counts a reference to its input; the cpu kernel did the real counting
    backend.incRef = () => {};
    // anything else that looked a cpu tensor up here would make tfjs MOVE its data into this backend: refuse
    backend.tensorMap = {
      get: (id: object) => {
        throw new Error(`tfjs-node's backend looked up a tensor it does not own (${String(id)})`);
      },
    };
    return backend;
  };
  // nodejs_kernel_backend's createTensorsTypeOpAttr reads the binding's constants from tf.findBackend('tensorflow')
  const typeBinding = new RecordingBinding();
  if (!tf.findBackend('tensorflow'))
    tf.registerBackend('tensorflow', () => makeBackend(typeBinding) as unknown as tf.KernelBackend, -100);
  vendored = { kernels, registered, makeBackend };
  return vendored;
}

const asList = (x: tf.TensorInfo | tf.TensorInfo[]) => (Array.isArray(x) ? x : [x]);

/**
 * The convolutions and their gradients as zeros of the shape the cpu kernel would give. tfjs-backend-cpu's
 * JavaScript convolution gradients run at a few MFLOP/s (Conv2DBackpropFilter took 20 of 21 s of a HarDNet39ds
 * step at 32x32), minutes for HarDNet68/85; tests that look at which kernels run and what crosses the host-device
 * boundary need their shapes, not their values (the fixture tests check the values).
 */
const SHAPE_ONLY: Record<string, (args: Parameters<KernelFunc>[0]) => number[]> = {
  Conv2D: ({ inputs, attrs }) => convInfo(inputs.x!.shape, inputs.filter!.shape, attrs!, false).outShape,
  DepthwiseConv2dNative: ({ inputs, attrs }) => convInfo(inputs.x!.shape, inputs.filter!.shape, attrs!, true).outShape,
  Conv2DBackpropInput: ({ attrs }) => [...(attrs!.inputShape as number[])],
  Conv2DBackpropFilter: ({ attrs }) => [...(attrs!.filterShape as number[])],
  DepthwiseConv2dNativeBackpropInput: ({ attrs }) => [...(attrs!.inputShape as number[])],
  DepthwiseConv2dNativeBackpropFilter: ({ attrs }) => [...(attrs!.filterShape as number[])],
};

function convInfo(x: number[], f: number[], a: tf.NamedAttrMap, depthwise: boolean): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    x as [number, number, number, number],
    f as [number, number, number, number],
    a.strides as number,
    (a.dilations as number | undefined) ?? 1,
    a.pad as 'valid',
    a.dimRoundingMode as 'floor' | undefined,
    depthwise,
  );
}

function shapeOnly(kernel: string, args: Parameters<KernelFunc>[0]): tf.TensorInfo | undefined {
  const shape = SHAPE_ONLY[kernel]?.(args);
  if (!shape) return undefined;
  const backend = args.backend as {
    makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): tf.TensorInfo;
  };
  return backend.makeTensorInfo(shape, 'float32', new Float32Array(shape.reduce((a, b) => a * b, 1)));
}

/** Runs fn with the cpu backend's convolutions replaced by shapeOnly's zeros (see SHAPE_ONLY for why). */
export async function withShapeOnlyConvolutions<T>(fn: () => Promise<T> | T): Promise<T> {
  const originals = Object.keys(SHAPE_ONLY).map((k) => tf.getKernel(k, 'cpu') as unknown as KernelConfig);
  for (const cfg of originals) {
    tf.unregisterKernel(cfg.kernelName, 'cpu');
    tf.registerKernel({
      ...cfg,
      kernelFunc: ((args: Parameters<KernelFunc>[0]) => shapeOnly(cfg.kernelName, args)!) as unknown as tf.KernelFunc,
    } as tf.KernelConfig);
  }
  try {
    return await fn();
  } finally {
    for (const cfg of originals) {
      tf.unregisterKernel(cfg.kernelName, 'cpu');
      tf.registerKernel(cfg as unknown as tf.KernelConfig);
    }
  }
}

/** Runs one dispatched cpu kernel's arguments through tfjs-node's wrapper of the same kernel. */
function throughTfjsNode(
  v: Vendored,
  kernel: string,
  args: Parameters<KernelFunc>[0],
  real: tf.TensorInfo[],
): Dispatch {
  const cfg = v.kernels.get(kernel);
  if (!cfg) {
    const why = v.registered.kernels[kernel]
      ? `registered by tfjs-node ${v.registered.version} (${v.registered.kernels[kernel]!.file}) but not vendored: run test/fixtures/tfjs-node/vendor.mjs with it`
      : `tfjs-node ${v.registered.version} registers no kernel '${kernel}'`;
    return { kernel, ops: [], error: why };
  }
  const binding = new RecordingBinding();
  const backend = v.makeBackend(binding);
  backend.realOutputs = [...real];
  const d: Dispatch = { kernel, ops: binding.calls };
  try {
    const out = asList(cfg.kernelFunc({ inputs: args.inputs, attrs: args.attrs, backend }));
    const shapes = (xs: tf.TensorInfo[]) => JSON.stringify(xs.map((t) => t.shape));
    if (shapes(out) !== shapes(real)) d.error = `outputs ${shapes(out)}, the cpu kernel's ${shapes(real)}`;
    tf.dispose(out as tf.Tensor[]);
  } catch (e) {
    d.error = (e as Error).message;
  }
  return d;
}

/**
 * Runs `fn` with every cpu kernel also sent through tfjs-node's wrapper; returns fn's result and the dispatches.
 * The cpu backend must be active. `shapeOnlyConvolutions`: see SHAPE_ONLY.
 */
export async function recordTfjsNode<T>(
  fn: () => Promise<T> | T,
  opts: { shapeOnlyConvolutions?: boolean } = {},
): Promise<{ result: T; dispatches: Dispatch[] }> {
  if (tf.getBackend() !== 'cpu')
    throw new Error(`recordTfjsNode: backend '${tf.getBackend()}' is active, expected cpu`);
  const v = load();
  const dispatches: Dispatch[] = [];
  const originals = tf.getKernelsForBackend('cpu') as unknown as KernelConfig[];
  let depth = 0;
  for (const cfg of originals) {
    tf.unregisterKernel(cfg.kernelName, 'cpu');
    tf.registerKernel({
      ...cfg,
      kernelFunc: ((args: Parameters<KernelFunc>[0]) => {
        const out = (opts.shapeOnlyConvolutions && shapeOnly(cfg.kernelName, args)) || cfg.kernelFunc(args);
        // kernels that tfjs-node's wrappers run on the active backend themselves (e.g. a Reshape inside one) would
        // be recorded twice; the outer dispatch is what the step asked for
        if (depth === 0) {
          depth++;
          try {
            dispatches.push(throughTfjsNode(v, cfg.kernelName, args, asList(out)));
          } finally {
            depth--;
          }
        }
        return out;
      }) as unknown as tf.KernelFunc,
    } as tf.KernelConfig);
  }
  try {
    return { result: await fn(), dispatches };
  } finally {
    for (const cfg of originals) {
      tf.unregisterKernel(cfg.kernelName, 'cpu');
      tf.registerKernel(cfg as unknown as tf.KernelConfig);
    }
  }
}
