/**
 * Crop resample + flip + NormalizeImage in one WebAssembly SIMD pass (native/resample/resample.c), for the train
 * transforms' RandCropImage -> RandFlipImage -> NormalizeImage: sharp decodes and crops, this module resizes the
 * crop and writes the normalised floats straight into the caller's slice of the batch.
 *
 * Why not sharp's resize: it is a second libvips operation that costs 1-2 CPU-ms per 224x224 crop of a 500x375
 * JPEG (docs/bench_data.md), more than the decode, and its result is a fresh Buffer that still has to be
 * normalised into the batch by another pass. The kernel is the same (libvips' linear: anti-aliased triangle when
 * shrinking, bilinear when enlarging); see resample.c for how its values compare.
 *
 * The module owns its memory: the crop is copied in, the floats copied out. Its memory grows to the largest crop
 * seen (bounded by the decoder's pixel limit) and is never handed back; one instance per process.
 */
import { RESAMPLE_WASM_BASE64 } from './resample_wasm.js';

interface ResampleExports {
  memory: WebAssembly.Memory;
  __heap_base: WebAssembly.Global;
  resample_rgb(
    src: number,
    sw: number,
    sh: number,
    dst: number,
    ow: number,
    oh: number,
    flip: number,
    lut: number,
    scratch: number,
  ): void;
  scratch_bytes(sw: number, sh: number, ow: number, oh: number): number;
}

let exportsOnce: ResampleExports | undefined;

function kernel(): ResampleExports {
  if (exportsOnce === undefined) {
    const module = new WebAssembly.Module(Buffer.from(RESAMPLE_WASM_BASE64, 'base64'));
    exportsOnce = new WebAssembly.Instance(module, {}).exports as unknown as ResampleExports;
  }
  return exportsOnce;
}

const align = (n: number) => Math.ceil(n / 64) * 64;

/** cv2.flip's code (1 left-right, 0 top-bottom, -1 both) as the kernel's bits */
function flipBits(code: number | undefined): number {
  if (code === undefined) return 0;
  if (code === 1) return 1;
  if (code === 0) return 2;
  if (code === -1) return 3;
  throw new RangeError(`resampleNormalize: flip code ${code} is not 1, 0 or -1`);
}

/**
 * Resample an RGB uint8 HWC crop (sw x sh) to ow x oh, mirror it as cv2.flip(img, flip) would (none when undefined),
 * and write
 * luts[c][round(value)] (per-channel 256-entry tables, as NormalizeImage builds them) into `dest` (ow*oh*3 floats, HWC).
 */
export function resampleNormalize(
  src: Uint8Array,
  sw: number,
  sh: number,
  ow: number,
  oh: number,
  flip: number | undefined,
  luts: Float32Array,
  dest: Float32Array,
): void {
  if (src.length !== sw * sh * 3) throw new RangeError(`resampleNormalize: ${src.length} bytes is not ${sw}x${sh}x3`);
  if (dest.length !== ow * oh * 3)
    throw new RangeError(`resampleNormalize: destination of ${dest.length} floats for ${ow}x${oh}x3`);
  if (luts.length !== 768) throw new RangeError(`resampleNormalize: ${luts.length} lookup entries, expected 3 x 256`);
  const k = kernel();
  const lutAt = align(k.__heap_base.value as number);
  const srcAt = align(lutAt + 768 * 4);
  const dstAt = align(srcAt + src.length);
  const scratchAt = align(dstAt + dest.length * 4);
  const end = scratchAt + k.scratch_bytes(sw, sh, ow, oh);
  const have = k.memory.buffer.byteLength;
  if (end > have) k.memory.grow(Math.ceil((end - have) / 65536));
  const buf = k.memory.buffer;
  new Float32Array(buf, lutAt, 768).set(luts);
  new Uint8Array(buf, srcAt, src.length).set(src);
  k.resample_rgb(srcAt, sw, sh, dstAt, ow, oh, flipBits(flip), lutAt, scratchAt);
  dest.set(new Float32Array(buf, dstAt, dest.length));
}
