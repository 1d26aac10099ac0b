// Shared plumbing for the kernels: checking inputs and attributes.
import type { backend_util, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import { KernelInvariantError } from './errors.js';

/** The kernels compute in float32 only; another dtype reaching one is a wiring bug worth a clear message. */
export function checkFloat32(t: TensorInfo, kernel: string, name: string): void {
  if (t.dtype !== 'float32')
    throw new KernelInvariantError(`${kernel}: input '${name}' must be float32, got ${t.dtype}`);
}

/** These kernels are written for NHWC and dilation 1 (all HarDNet uses); anything else is refused loudly. */
export function checkConvInfo(info: backend_util.Conv2DInfo, kernel: string): void {
  if (info.dataFormat !== 'channelsLast')
    throw new KernelInvariantError(`${kernel}: only NHWC (dataFormat 'NHWC') is implemented, got ${info.dataFormat}`);
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1)
    throw new KernelInvariantError(
      `${kernel}: dilations must be 1, got [${info.dilationHeight}, ${info.dilationWidth}]`,
    );
}

export function checkShape(actual: number[], expected: number[], kernel: string, name: string): void {
  if (actual.length !== expected.length || actual.some((d, i) => d !== expected[i]))
    throw new KernelInvariantError(
      `${kernel}: '${name}' has shape [${actual}], expected [${expected}] from the conv attributes`,
    );
}

/** A named kernel input; a missing one is a wiring bug worth a clear message. */
export function requireInput(inputs: NamedTensorInfoMap, name: string, kernel: string): TensorInfo {
  const t = inputs[name];
  if (!t) throw new KernelInvariantError(`${kernel}: missing input '${name}'`);
  return t;
}

export const sizeOf = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);
