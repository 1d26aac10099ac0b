// Per-kernel profile of one training step (tf.profile, CPU time): what share of the step each kernel takes and, for the
// convolutions, at how many GFLOP/s (2 * multiply-accumulates, from the shapes), so that the step's time can be read
// against the one-core WebAssembly SIMD limit (bench/simd_peak.ts).
import * as tf from '@tensorflow/tfjs-core';
import { WINOGRAD_MIN_CHANNELS } from '../worker/backend/wasm_kernels/conv2d.js';

const prod = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** 2 * MACs of a convolution kernel call from its input and output shapes; 0 for other kernels. */
export function convFlops(name: string, inputs: number[][], outputs: number[][]): number {
  switch (name) {
    case 'Conv2D':
    case 'FusedConv2D': // x [N,H,W,Ci], filter [KH,KW,Ci,Co] -> y
      return 2 * prod(outputs[0]!) * prod(inputs[1]!.slice(0, 3));
    case 'Conv2DBackpropInput': // dy, filter [KH,KW,Ci,Co] -> dx
      return 2 * prod(inputs[0]!) * prod(inputs[1]!.slice(0, 3));
    case 'Conv2DBackpropFilter': // x, dy -> dW [KH,KW,Ci,Co]
      return 2 * prod(inputs[1]!) * prod(outputs[0]!.slice(0, 3));
    case 'DepthwiseConv2dNative':
    case 'FusedDepthwiseConv2D':
      return 2 * prod(outputs[0]!) * prod(inputs[1]!.slice(0, 2));
    case 'DepthwiseConv2dNativeBackpropInput':
      return 2 * prod(inputs[0]!) * prod(inputs[1]!.slice(0, 2));
    case 'DepthwiseConv2dNativeBackpropFilter':
      return 2 * prod(inputs[1]!) * prod(outputs[0]!.slice(0, 2));
    default:
      return 0;
  }
}

/** ' 3x3 s1', ' 1x1', ...: which convolutions a row holds. Winograd takes the 3x3 stride-1 ones; ' narrow' marks
 * those with fewer than 32 channels on a side (a lower effective rate), ' direct' the ones it leaves to the direct
 * kernels (below WINOGRAD_MIN_CHANNELS a side, or outputs under 4x4). */
function convKind(name: string, inputs: number[][], outputs: number[][]): string {
  if (!name.startsWith('Conv2D')) return '';
  const filter = name === 'Conv2DBackpropFilter' ? outputs[0]! : inputs[1]!;
  const [x, y] =
    name === 'Conv2DBackpropInput'
      ? [outputs[0]!, inputs[0]!]
      : name === 'Conv2D'
        ? [inputs[0]!, outputs[0]!]
        : [inputs[0]!, inputs[1]!];
  const stride = Math.round(x[1]! / y[1]!);
  const narrow = filter[2]! < 32 || filter[3]! < 32 ? ' narrow' : '';
  const direct =
    filter[0] === 3 &&
    filter[1] === 3 &&
    stride === 1 &&
    (Math.min(filter[2]!, filter[3]!) < WINOGRAD_MIN_CHANNELS || y[1]! < 4 || y[2]! < 4)
      ? ' direct'
      : '';
  return ` ${filter[0]}x${filter[1]}${stride > 1 ? ` s${stride}` : ' s1'}${narrow}${direct}`;
}

export interface KernelRow {
  kernel: string;
  calls: number;
  ms: number;
  share: number;
  gflops?: number;
}

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/**
 * Profiles one step. Each kernel's time is the CPU time of this process while it ran (the wasm kernels are
 * synchronous), in place of the backend's wall-clock timer: on a machine shared with other jobs, wall time also
 * counts the slices another process held the core.
 */
export async function profileStep(step: () => tf.Tensor[], opts: { json: boolean }): Promise<KernelRow[]> {
  let outs: tf.Tensor[] = [];
  const backend = tf.backend() as unknown as { time(f: () => void): Promise<{ kernelMs: number }> };
  const wallTimer = backend.time;
  backend.time = async (f) => {
    const c0 = cpuMs();
    f();
    return { kernelMs: cpuMs() - c0 };
  };
  const t0 = performance.now();
  let info: Awaited<ReturnType<typeof tf.profile>>;
  try {
    info = await tf.profile(() => {
      outs = step();
      return outs;
    });
    await outs[0]!.data();
  } finally {
    backend.time = wallTimer;
  }
  const wall = performance.now() - t0;
  tf.dispose(outs);
  const byName = new Map<string, { calls: number; ms: number; flops: number }>();
  for (const k of info.kernels) {
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : NaN;
    const key = k.name + convKind(k.name, k.inputShapes as number[][], k.outputShapes as number[][]);
    const e = byName.get(key) ?? { calls: 0, ms: 0, flops: 0 };
    e.calls++;
    e.ms += ms;
    e.flops += convFlops(k.name, k.inputShapes as number[][], k.outputShapes as number[][]);
    byName.set(key, e);
  }
  const total = [...byName.values()].reduce((a, e) => a + e.ms, 0);
  const rows: KernelRow[] = [...byName]
    .map(([kernel, e]) => ({
      kernel,
      calls: e.calls,
      ms: e.ms,
      share: e.ms / total,
      ...(e.flops > 0 ? { gflops: e.flops / e.ms / 1e6 } : {}),
    }))
    .sort((a, b) => b.ms - a.ms);
  if (opts.json) console.log(JSON.stringify({ profile: rows, kernels_ms: total, wall_ms: wall }));
  else {
    console.log(
      `profile of one forward+backward: ${total.toFixed(0)} CPU ms in kernels, ${wall.toFixed(0)} ms wall (profiling adds overhead)`,
    );
    for (const r of rows) {
      if (r.share < 0.001) continue;
      console.log(
        `  ${r.kernel.padEnd(38)} ${(100 * r.share).toFixed(1).padStart(5)} % ${r.ms.toFixed(0).padStart(7)} ms ${String(r.calls).padStart(5)} calls${r.gflops ? `  ${r.gflops.toFixed(1)} GFLOP/s` : ''}`,
      );
    }
  }
  return rows;
}
