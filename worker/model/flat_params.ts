/**
 * The model's parameters as flat Float32Arrays: each parameter's values back to back, in the order of the map
 * (the model's state_dict order). FlatParameters is the one owner of that memory, for the weights and for the
 * gradients: the training loop packs the gradients into it and all-reduces them where they are, rank 0's weights
 * are broadcast from it, and the optimizer (optim/momentum.ts) updates both in place.
 *
 * The memory is a WebAssembly.Memory, so that a kernel built with --import-memory (native/optim/momentum.c) reads
 * and writes the weights and gradients where they are: copying 4 bytes per parameter in and out of a kernel's own
 * memory every step is memory traffic that two workers on one host pay at the same moment. The bottom of the
 * memory is left to such kernels' stack and static data (KERNEL_RESERVED_BYTES); each checks it fits.
 */
import * as tf from '@tensorflow/tfjs-core';
import { copyInto } from '../backend/read.js';

export interface FlatSlot {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

export function flatLayout(params: Map<string, tf.Tensor>): { slots: FlatSlot[]; size: number } {
  const slots: FlatSlot[] = [];
  let offset = 0;
  for (const [name, t] of params) {
    slots.push({ name, shape: t.shape, offset, size: t.size });
    offset += t.size;
  }
  return { slots, size: offset };
}

/** Bytes at the bottom of the memory for the stack and static data of the kernels that import it. */
export const KERNEL_RESERVED_BYTES = 65536;
const PAGE_BYTES = 65536;
/** regions start on cache lines, so a SIMD kernel's loads do not straddle two for every vector */
const REGION_ALIGN = 64;

/** One flat array of the parameters' size in the memory, and where it starts (for kernels: a pointer). */
export interface FlatRegion {
  readonly view: Float32Array;
  readonly byteOffset: number;
}

interface Slot extends FlatSlot {
  variable: tf.Variable;
  /** the variable's dataId when `weights` last held its values; any other dataId: someone assigned it since */
  hostAt?: object;
  /** the same for the device copy (deviceWeights) */
  deviceAt?: object;
}

export class FlatParameters {
  readonly slots: readonly FlatSlot[];
  /** floats in all parameters together */
  readonly size: number;
  /** holds the weights, the gradients and the regions optimizers allocate (allocate) */
  readonly memory: WebAssembly.Memory;
  private readonly vars: Slot[];
  private readonly regionBytes: number;
  private regions: number[] = [];
  /** views of `regions`, on the buffer they were made of (a grow replaces the buffer) */
  private views: Float32Array[] = [];
  private handedOut = false;
  private device: tf.Tensor1D | undefined;

  constructor(private readonly params: Map<string, tf.Variable>) {
    const { slots, size } = flatLayout(params);
    this.slots = slots;
    this.size = size;
    this.vars = slots.map((s) => ({ ...s, variable: params.get(s.name)! }));
    this.regionBytes = Math.ceil((size * 4) / REGION_ALIGN) * REGION_ALIGN;
    this.memory = new WebAssembly.Memory({ initial: Math.ceil(KERNEL_RESERVED_BYTES / PAGE_BYTES) });
    this.weightRegion = this.region(this.addRegion());
    this.gradientRegion = this.region(this.addRegion());
  }

  private addRegion(): number {
    const at = KERNEL_RESERVED_BYTES + this.regions.length * this.regionBytes;
    const end = at + this.regionBytes;
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE_BYTES));
    this.regions.push(at);
    return this.regions.length - 1;
  }

  /** region k's view on the memory's current buffer (a grow replaces the buffer) */
  private viewOf(k: number): Float32Array {
    this.handedOut = true;
    const buffer = this.memory.buffer;
    if (this.views[k]?.buffer !== buffer) this.views[k] = new Float32Array(buffer, this.regions[k]!, this.size);
    return this.views[k]!;
  }

  private region(k: number): FlatRegion {
    const owner = this;
    return {
      byteOffset: this.regions[k]!,
      get view() {
        return owner.viewOf(k);
      },
    };
  }

  /**
   * A new flat region of the parameters' size and layout, zeros, in the same memory (an optimizer's state, e.g.
   * the momentum's velocities). Only before any view is taken: growing the memory detaches the views taken of it,
   * which would then read as empty (a FlatRegion's `view` is looked up anew each time and stays valid).
   */
  allocate(): FlatRegion {
    if (this.handedOut)
      throw new RangeError('flat parameters: a region is allocated after views of the memory were handed out');
    return this.region(this.addRegion());
  }

  /** The weights, as of the last packWeights (or as an update in place left them). */
  readonly weightRegion: FlatRegion;
  get weights(): Float32Array {
    return this.viewOf(0);
  }
  /** Where the gradients are packed (packGradients), all-reduced in place, and read by the optimizer. */
  readonly gradientRegion: FlatRegion;
  get gradients(): Float32Array {
    return this.viewOf(1);
  }

  /** One parameter's slice of `flat` (weights, gradients or a region of the same layout), as a view. */
  slice(flat: Float32Array, name: string): Float32Array {
    const s = this.slots.find((x) => x.name === name);
    if (!s) throw new RangeError(`flat parameters: no parameter '${name}'`);
    return flat.subarray(s.offset, s.offset + s.size);
  }

  /**
   * weights <- the variables, those only that someone assigned since `weights` last held their values (a
   * checkpoint load, an update on the device): on wasm each is read from the backend's heap (read.ts); on every
   * other backend they are concatenated on the device and read with ONE transfer.
   */
  packWeights(): void {
    const stale = this.vars.filter((s) => s.variable.dataId !== s.hostAt);
    if (stale.length === 0) return;
    const w = this.weights;
    if (tf.getBackend() === 'wasm') {
      for (const s of stale) copyInto(s.variable, w, s.offset);
    } else {
      const fused = tf.tidy(() => tf.concat(stale.map((s) => tf.reshape(s.variable, [-1]))));
      try {
        const values = fused.dataSync() as Float32Array;
        let o = 0;
        for (const s of stale) {
          w.set(values.subarray(o, o + s.size), s.offset);
          o += s.size;
        }
      } finally {
        fused.dispose();
      }
    }
    for (const s of stale) s.hostAt = s.variable.dataId;
  }

  /**
   * The variables <- weights (tfjs tensors are immutable: each gets a new tensor). On wasm each slice is copied
   * into the heap; on the other backends (tfjs-node above all) the whole buffer goes over in ONE write and is
   * split on the device, so the number of host-to-device transfers does not grow with the parameters.
   */
  unpackWeights(): void {
    const w = this.weights;
    if (tf.getBackend() !== 'wasm') {
      tf.tidy(() => {
        // a copy: the cpu backend keeps the array it is given, and the weights change in place
        const all = tf.tensor1d(w.slice(), 'float32');
        for (const s of this.vars) s.variable.assign(tf.reshape(tf.slice(all, s.offset, s.size), s.shape));
      });
    } else {
      for (const s of this.vars) {
        const t = tf.tensor(w.subarray(s.offset, s.offset + s.size), s.shape, 'float32');
        s.variable.assign(t);
        t.dispose();
      }
    }
    for (const s of this.vars) s.hostAt = s.variable.dataId;
  }

  /**
   * gradients <- the tensors (not disposed here), which must name every parameter, each in its shape. On wasm each
   * is read from the backend's heap; on every other backend they are concatenated on the device and read with ONE
   * transfer: on a GPU each read is a blocking device-to-host copy, and one per parameter would be hundreds a step.
   */
  packGradients(grads: Map<string, tf.Tensor>): void {
    this.checkGradients(grads);
    const g = this.gradients;
    if (tf.getBackend() === 'wasm') {
      for (const s of this.vars) copyInto(grads.get(s.name)!, g, s.offset);
      return;
    }
    const fused = tf.tidy(() => tf.concat(this.vars.map((s) => tf.reshape(grads.get(s.name)!, [-1]))));
    try {
      copyInto(fused, g, 0);
    } finally {
      fused.dispose();
    }
  }

  /** Gradient tensors by name checked against the parameters: every one named, each of its size, none unknown. */
  checkGradients(grads: Map<string, tf.Tensor>): void {
    for (const s of this.vars) {
      const g = grads.get(s.name);
      if (!g) throw new RangeError(`no gradient for parameter '${s.name}'`);
      // a wrong size would spill into the next parameter's slot (or leave stale values) without any other sign
      if (g.size !== s.size)
        throw new RangeError(`gradient for parameter '${s.name}' has shape [${g.shape}], the parameter [${s.shape}]`);
    }
    if (grads.size > this.vars.length) {
      const unknown = [...grads.keys()].find((n) => !this.params.has(n));
      throw new RangeError(`gradient for unknown parameter '${unknown}'`);
    }
  }

  /**
   * The weights as one tensor on the backend's device, for an update there (optim/momentum_device.ts); owned here,
   * not to be disposed. Re-gathered on the device (a concat, no transfer) when a variable was assigned since.
   */
  deviceWeights(): tf.Tensor1D {
    if (!this.device || this.vars.some((s) => s.variable.dataId !== s.deviceAt)) {
      this.device?.dispose();
      this.device = tf.keep(
        tf.tidy(() => tf.concat(this.vars.map((s) => tf.reshape(s.variable, [-1]))) as tf.Tensor1D),
      );
      for (const s of this.vars) s.deviceAt = s.variable.dataId;
    }
    return this.device;
  }

  /**
   * The variables <- `next` (all weights back to back, on the device), split there and assigned; `next` is owned
   * here from now on, as the device copy, and the previous one is disposed.
   */
  assignDeviceWeights(next: tf.Tensor1D): void {
    if (next !== this.device) this.device?.dispose();
    this.device = tf.keep(next);
    tf.tidy(() => {
      const parts = tf.split(
        next,
        this.vars.map((s) => s.size),
      );
      this.vars.forEach((s, i) => {
        s.variable.assign(tf.reshape(parts[i]!, s.shape));
      });
    });
    for (const s of this.vars) s.deviceAt = s.variable.dataId;
  }

  /** The device copy of the weights, if any (the memory itself is reclaimed with this object). */
  dispose(): void {
    this.device?.dispose();
    this.device = undefined;
  }
}
