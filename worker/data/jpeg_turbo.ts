/**
 * The decode of a JPEG's crop box with libjpeg-turbo's TurboJPEG API: only the rows of the box are decoded
 * (`jpeg_skip_scanlines` above it, nothing below it) and only the iMCU columns around it (`jpeg_crop_scanline`).
 *
 * Why not sharp for this: a sharp call costs ~0.5 CPU-ms before any pixel is decoded (libvips pipeline set-up,
 * per-strip thread wake-ups), libvips decodes every row above a crop box, and neither exposes libjpeg's cropped
 * decode. On RandCropImage's boxes of a 500x375 photo this path costs a seventh of sharp's decode + extract and
 * gives the same pixels, bit for bit (docs/bench_data.md has the figures and command; test/jpeg_turbo.test.ts
 * checks the pixels).
 *
 * Why this way in: no npm package exposes TurboJPEG's cropping region. @julusian/jpeg-turbo ships a prebuilt
 * libturbojpeg (libjpeg-turbo 3.1, SIMD) beside its binding for Linux; its binding decodes whole images only, so
 * this module calls the library's C API through koffi (an FFI with prebuilt binaries) instead. Both are optional
 * dependencies: where either is missing (macOS and Windows get no libturbojpeg from that package) or the library
 * is not the expected API version, `jpegTurboStatus()` says why and every image goes to sharp.
 *
 * What stays sharp's: every image this path does not decode exactly as sharp would. The caller sends a file here
 * only when it has no EXIF rotation and no ICC profile (sharp rotates and colour-converts those); here CMYK, 12-bit
 * and lossless files, and any file libjpeg warns about (truncated data, extraneous bytes) or rejects, return
 * undefined and the caller decodes them with sharp, whose error for a bad file is the one the user sees.
 *
 * Bounds for hostile files: here the library refuses images over the caller's pixel limit and progressive files
 * with more than 500 scans (libjpeg-turbo's own advice against scan-flooding files), and caps its memory; a file
 * it refuses goes to sharp, whose own limits then apply, as they did before this path existed.
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { RawImage } from './image.js';

/** A crop box in stored (not EXIF-rotated) pixel coordinates. */
export interface JpegBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

type Handle = unknown;

interface TurboApi {
  init(initType: number): Handle;
  destroy(h: Handle): void;
  set(h: Handle, param: number, value: number): number;
  get(h: Handle, param: number): number;
  decompressHeader(h: Handle, jpeg: Uint8Array, size: number): number;
  setCroppingRegion(h: Handle, region: { x: number; y: number; w: number; h: number }): number;
  decompress8(
    h: Handle,
    jpeg: Uint8Array,
    size: number,
    out: Uint8Array,
    pitch: number,
    pixelFormat: number,
    done: (err: unknown, rc: number) => void,
  ): void;
}

// turbojpeg.h (libjpeg-turbo 3.1): TJINIT_DECOMPRESS, the TJPARAM_* used here, TJPF_RGB, tjMCUWidth[]
const TJINIT_DECOMPRESS = 1;
const TJPARAM_SUBSAMP = 4;
const TJPARAM_JPEGWIDTH = 5;
const TJPARAM_JPEGHEIGHT = 6;
const TJPARAM_SCANLIMIT = 13;
const TJPARAM_MAXMEMORY = 23;
const TJPARAM_MAXPIXELS = 24;
const TJPF_RGB = 0;
/** iMCU width in pixels per TJSAMP (444, 422, 420, GRAY, 440, 411, 441) */
const MCU_WIDTH = [8, 16, 16, 8, 8, 32, 8];
const SCAN_LIMIT = 500;

let api: TurboApi | undefined;
let unavailable: string | undefined;
/** decompressors not in use; one per decode in flight (a handle is not thread-safe), kept for the process */
const idle: Handle[] = [];
let created = 0;

function libraryPath(require: NodeJS.Require): string {
  const pkg = path.dirname(require.resolve('@julusian/jpeg-turbo/package.json'));
  const glibc = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header
    ?.glibcVersionRuntime;
  const dir = `jpeg-turbo-${process.platform}-${process.arch}${process.platform === 'linux' && !glibc ? '-musl' : ''}`;
  return path.join(pkg, 'prebuilds', dir, 'libturbojpeg.so.0');
}

function load(): TurboApi | undefined {
  if (api || unavailable) return api;
  try {
    if (process.platform !== 'linux') throw new Error(`no prebuilt libturbojpeg for ${process.platform}`);
    const require = createRequire(import.meta.url);
    const koffi = require('koffi');
    const lib = koffi.load(libraryPath(require));
    koffi.struct('tjregion', { x: 'int', y: 'int', w: 'int', h: 'int' });
    const decompress8 = lib.func('int tj3Decompress8(void*, const uint8_t*, size_t, uint8_t*, int, int)');
    const candidate: TurboApi = {
      init: lib.func('void* tj3Init(int)'),
      destroy: lib.func('void tj3Destroy(void*)'),
      set: lib.func('int tj3Set(void*, int, int)'),
      get: lib.func('int tj3Get(void*, int)'),
      decompressHeader: lib.func('int tj3DecompressHeader(void*, const uint8_t*, size_t)'),
      setCroppingRegion: lib.func('int tj3SetCroppingRegion(void*, tjregion)'),
      decompress8: (...args) => decompress8.async(...args),
    };
    // TJPARAM_MAXPIXELS is 24 from libjpeg-turbo 3.0.2 on (the indices used here are those of 3.0.2-3.1); 3.0.0
    // and 3.0.1 refuse it, and their indices differ
    const probe = candidate.init(TJINIT_DECOMPRESS);
    if (!probe || candidate.set(probe, TJPARAM_MAXPIXELS, 1) !== 0 || candidate.get(probe, TJPARAM_MAXPIXELS) !== 1) {
      throw new Error('libturbojpeg is not the libjpeg-turbo 3.0.2+ API');
    }
    idle.push(probe);
    created = 1;
    api = candidate;
  } catch (e) {
    unavailable = (e as Error).message.split('\n')[0];
  }
  return api;
}

/**
 * Whether JPEG boxes are decoded here, and if not, why (bench:data prints it); `decompressors`: how many
 * TurboJPEG instances exist (at most as many as decodes were ever in flight at once).
 */
export function jpegTurboStatus(): { available: boolean; reason?: string; decompressors: number } {
  return load()
    ? { available: true, decompressors: created }
    : { available: false, reason: unavailable, decompressors: 0 };
}

/** One line for the worker log: which decoder the JPEG crops get. */
export function jpegDecoderDescription(): string {
  const s = jpegTurboStatus();
  return s.available
    ? 'JPEG crops decoded by libjpeg-turbo (TurboJPEG cropping region); rotated, ICC-tagged, CMYK and other files by sharp'
    : `every image decoded by sharp (libjpeg-turbo not loaded: ${s.reason})`;
}

/** An idle decompressor (or a new one) with the caller's limits, or undefined when none can be had. */
function acquire(t: TurboApi, maxPixels: number): Handle | undefined {
  let h = idle.pop();
  if (h === undefined) {
    h = t.init(TJINIT_DECOMPRESS);
    if (!h) return undefined;
    created++;
  }
  const int = (v: number) => Math.min(Math.max(1, Math.ceil(v)), 2 ** 31 - 1);
  // MAXMEMORY in MB: the coefficients of a progressive file of maxPixels pixels (3 components, 2 bytes each) and
  // the row buffers
  if (
    t.set(h, TJPARAM_MAXPIXELS, int(maxPixels)) !== 0 ||
    t.set(h, TJPARAM_MAXMEMORY, int((maxPixels * 6) / 2 ** 20 + 64)) !== 0 ||
    t.set(h, TJPARAM_SCANLIMIT, SCAN_LIMIT) !== 0
  ) {
    discard(t, h);
    return undefined;
  }
  return h;
}

/** A decompressor that must not be reused. */
function discard(t: TurboApi, h: Handle): void {
  t.destroy(h);
  created--;
}

/**
 * Decode `box` of a JPEG to RGB uint8 HWC, or undefined when this file is sharp's to decode (see the module
 * comment). `width`/`height` are the file's stored size as the caller read it from the header; a file whose
 * frame says otherwise is left to sharp too.
 */
export async function decodeJpegBox(
  jpeg: Buffer,
  width: number,
  height: number,
  box: JpegBox,
  maxPixels: number,
): Promise<RawImage | undefined> {
  const t = load();
  if (!t) return undefined;
  const h = acquire(t, maxPixels);
  if (h === undefined) return undefined; // no decompressor to be had: sharp decodes this one
  let reusable = true;
  try {
    if (t.decompressHeader(h, jpeg, jpeg.length) !== 0) {
      // a fatal error in the header leaves the instance mid-header (3.1.2 returns without aborting it): every
      // later header on it would fail ("two SOI markers"), so it is not reused
      discard(t, h);
      reusable = false;
      return undefined;
    }
    // CMYK and YCCK files (no conversion to RGB), 12- and 16-bit ones (not the 8-bit call) and lossless ones (no
    // cropping) fail below, in the library, and go to sharp
    if (t.get(h, TJPARAM_JPEGWIDTH) !== width || t.get(h, TJPARAM_JPEGHEIGHT) !== height) return undefined;
    // an unusual subsampling (TJSAMP_UNKNOWN) cannot be cropped by TurboJPEG: rare enough to leave to sharp
    const mcuWidth = MCU_WIDTH[t.get(h, TJPARAM_SUBSAMP)];
    if (mcuWidth === undefined) return undefined;
    const region = croppingRegion(width, box, mcuWidth);
    if (t.setCroppingRegion(h, region) !== 0) return undefined;
    const out = Buffer.allocUnsafe(region.w * region.h * 3);
    let rc: number;
    try {
      rc = await new Promise<number>((resolve, reject) =>
        t.decompress8(h, jpeg, jpeg.length, out, 0, TJPF_RGB, (err, r) => (err ? reject(err) : resolve(r))),
      );
    } catch {
      return undefined; // the call itself failed (koffi's queue of asynchronous calls full): sharp decodes it
    }
    // non-zero: an error, or a warning (libjpeg still wrote every row); either way sharp decides about this file
    if (rc !== 0) return undefined;
    const data = compactRows(out, region.w, box.left - region.x, box.width, box.height);
    return { kind: 'raw', data, width: box.width, height: box.height };
  } finally {
    if (reusable) idle.push(h);
  }
}

/**
 * The decoded region around a box: its rows exactly; its columns widened by half an iMCU on each side and then
 * aligned to the iMCU grid, as the cropping region must be. The widening matters: fancy upsampling at a cropped
 * region's edge replicates the edge chroma sample instead of reading its neighbour, so the columns next to the
 * region's edge would differ from a whole-image decode; half an iMCU away they do not (test/jpeg_turbo.test.ts).
 */
export function croppingRegion(
  imageWidth: number,
  box: JpegBox,
  mcuWidth: number,
): { x: number; y: number; w: number; h: number } {
  const x = Math.floor(Math.max(0, box.left - mcuWidth / 2) / mcuWidth) * mcuWidth;
  const end = Math.min(imageWidth, box.left + box.width + mcuWidth / 2);
  return { x, y: box.top, w: end - x, h: box.height };
}

/** The box's columns of each decoded row, moved to the front of the same buffer (they only move towards it). */
function compactRows(buf: Buffer, rowWidth: number, left: number, width: number, rows: number): Uint8Array {
  if (left !== 0 || width !== rowWidth) {
    for (let y = 0; y < rows; y++) {
      const from = (y * rowWidth + left) * 3;
      buf.copyWithin(y * width * 3, from, from + width * 3);
    }
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, width * rows * 3);
}
