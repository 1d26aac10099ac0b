/**
 * Image size (after EXIF orientation) read straight from JPEG and PNG headers.
 *
 * The loader needs every image's size before it plans crops and resizes; asking sharp (`metadata()`) costs a
 * libvips call per image, a few percent of what the train transforms cost (docs/bench_data.md); a header walk in
 * JavaScript costs far less. Anything unusual (other formats, a PNG with an eXIf chunk, an unreadable header)
 * returns undefined and the caller asks sharp instead, so this never decides alone whether a file is an image.
 */

export interface ImageSize {
  width: number;
  height: number;
}

/** EXIF orientation from a TIFF block (APP1 payload after "Exif\0\0"), or 1. */
function exifOrientation(b: Uint8Array, start: number, end: number): number {
  const le = b[start] === 0x49 && b[start + 1] === 0x49; // "II" little-endian, "MM" big-endian
  const u16 = (o: number) => (le ? b[o] | (b[o + 1] << 8) : (b[o] << 8) | b[o + 1]);
  const u32 = (o: number) =>
    le
      ? (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 2 ** 24
      : b[o] * 2 ** 24 + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
  if (start + 8 > end || u16(start + 2) !== 42) return 1;
  const ifd = start + u32(start + 4);
  if (ifd + 2 > end) return 1;
  const n = u16(ifd);
  for (let i = 0; i < n; i++) {
    const e = ifd + 2 + i * 12;
    if (e + 12 > end) break;
    if (u16(e) === 0x0112) return u16(e + 8);
  }
  return 1;
}

/** What a JPEG's markers say before its scan: stored size, EXIF orientation, whether an ICC profile is embedded. */
export interface JpegHeader {
  /** as stored, before EXIF orientation */
  width: number;
  height: number;
  orientation: number;
  iccProfile: boolean;
}

/**
 * The markers of a JPEG up to its first scan, or undefined when they cannot be read. Up to the scan, not the frame
 * header: an EXIF or ICC segment may follow the frame header, and libvips (sharp) reads it there too.
 */
export function jpegHeader(b: Uint8Array): JpegHeader | undefined {
  if (!(b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff)) return undefined;
  let orientation = 1;
  let iccProfile = false;
  let frame: { width: number; height: number } | undefined;
  let o = 2;
  while (o + 4 <= b.length) {
    if (b[o] !== 0xff) return undefined;
    const marker = b[o + 1];
    if (marker === 0xff) {
      o++;
      continue;
    } // fill byte
    if (marker === 0xda) return frame && { ...frame, orientation, iccProfile }; // the first scan
    if (marker === 0xd9) return undefined; // the end before any scan
    const len = (b[o + 2] << 8) | b[o + 3];
    const seg = o + 4;
    if (marker === 0xe1 && b[seg] === 0x45 && b[seg + 1] === 0x78 && b[seg + 2] === 0x69 && b[seg + 3] === 0x66) {
      orientation = exifOrientation(b, seg + 6, Math.min(o + 2 + len, b.length));
    }
    // APP2 "ICC_PROFILE\0": sharp converts such images to sRGB through the profile
    if (marker === 0xe2 && b[seg] === 0x49 && b[seg + 1] === 0x43 && b[seg + 2] === 0x43 && b[seg + 3] === 0x5f) {
      iccProfile = true;
    }
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC); the first one is the frame
    if (!frame && marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (seg + 5 > b.length) return undefined;
      const height = (b[seg + 1] << 8) | b[seg + 2];
      const width = (b[seg + 3] << 8) | b[seg + 4];
      if (!width || !height) return undefined;
      frame = { width, height };
    }
    o += 2 + len;
  }
  return undefined;
}

/** The size a JPEG is shown at: its stored size, turned by EXIF orientations 5-8 (the quarter turns). */
export function jpegDisplaySize({ width, height, orientation }: JpegHeader): ImageSize {
  return orientation >= 5 && orientation <= 8 ? { width: height, height: width } : { width, height };
}

function jpegSize(b: Uint8Array): ImageSize | undefined {
  const h = jpegHeader(b);
  return h && jpegDisplaySize(h);
}

function pngSize(b: Uint8Array): ImageSize | undefined {
  const u32 = (o: number) => b[o] * 2 ** 24 + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
  const type = (o: number) => String.fromCharCode(b[o], b[o + 1], b[o + 2], b[o + 3]);
  if (b.length < 33 || type(12) !== 'IHDR') return undefined;
  // sharp applies an eXIf chunk's orientation too: leave such files to it
  for (let o = 8; o + 8 <= b.length; ) {
    const t = type(o + 4);
    if (t === 'eXIf') return undefined;
    if (t === 'IDAT' || t === 'IEND') break;
    o += 12 + u32(o);
  }
  const width = u32(16);
  const height = u32(20);
  return width && height ? { width, height } : undefined;
}

/** The displayed size of a JPEG or PNG from its header, or undefined when only a decoder can tell. */
export function headerImageSize(b: Uint8Array): ImageSize | undefined {
  if (b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return jpegSize(b);
  if (b.length > 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return pngSize(b);
  return undefined;
}
