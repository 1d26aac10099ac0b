/**
 * The decode cache of all the workers on one host in one memory-mapped file on /dev/shm, slot i holding sample i
 * of the (identically shuffled) file list. With a private cache per worker (decode_cache.ts) each of W workers
 * decodes every image itself, and only sees 1/W of them per epoch, so its cache fills slowly; here an image
 * decoded by any worker serves all of them from then on, and the host holds one copy.
 *
 * Layout: 64-byte header (Int32: magic, width, height, sample count), one state byte per sample (1 = ready), then the slots of
 * width*height*3 bytes. The first image fixes the slot size (the transform list's head ends in a fixed-size
 * resize or crop); an image of another size is simply not shared. A slot is written before its state byte is
 * set with Atomics.store, and read only after Atomics.load sees it set. Two workers that decode the same image at
 * once write the same bytes.
 *
 * The file is created 0600 in the job's 0700 directory and unlinked once every local worker has opened it
 * (unlinkName), so a killed job leaves nothing behind in RAM.
 */
import { DataError } from '../../shared/errors.js';
import * as fs from 'node:fs';
import { assertPrivateFile, NO_FOLLOW, SHM_ROOT, type NativeShm } from '../sys/shm.js';
import type { ImageCache } from './decode_cache.js';
import type { RawImage } from './image.js';

const MAGIC = 0x31434448; // "HDC1"
const HEADER = 64;

export class SharedDecodeCache implements ImageCache {
  private fd: number | undefined;
  private header: Int32Array;
  private states: Uint8Array;
  private slots: Uint8Array | undefined;
  private slotBytes = 0;
  private readonly dataStart: number;
  private disabled = false;
  /** why the cache is off, for describe() */
  private offReason = '';
  hits = 0;
  misses = 0;

  constructor(
    readonly file: string,
    readonly count: number,
    readonly budgetBytes: number,
    private readonly native: NativeShm,
  ) {
    // O_CREAT without O_EXCL: the first worker creates it, the others open the same file
    const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | NO_FOLLOW, 0o600);
    try {
      assertPrivateFile(fd, `decode cache ${file}`);
      this.dataStart = Math.ceil((HEADER + count) / 64) * 64;
      const head = new Uint8Array(native.map(fd, this.dataStart, true, true));
      this.header = new Int32Array(head.buffer, 0, HEADER / 4);
      this.states = head.subarray(HEADER, HEADER + count);
      // Each header value is claimed with a compare-exchange, the sample count before the magic: a worker opening
      // the file while the first one is between the two finds the count already there (and claims the magic
      // itself, with the same value), never a magic with no count yet. A file left by an earlier attempt of the
      // job for another list is not used.
      const countThere = Atomics.compareExchange(this.header, 3, 0, count);
      const magicThere = Atomics.compareExchange(this.header, 0, 0, MAGIC);
      if ((countThere !== 0 && countThere !== count) || (magicThere !== 0 && magicThere !== MAGIC)) {
        throw new DataError(
          `${file} holds another list's images (${countThere} samples, magic ${magicThere.toString(16)}; this list has ${count})`,
        );
      }
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    this.fd = fd;
  }

  /** Remove the file's name; the pages stay while any worker has it open. */
  unlinkName(): void {
    try {
      fs.rmSync(this.file, { force: true });
    } catch {
      /* another worker did */
    }
  }

  /** Map the slots once the slot size is known (set by this or another worker); false when caching is off. */
  private ready(): boolean {
    if (this.slots) return true;
    if (this.disabled || this.fd === undefined) return false;
    const w = Atomics.load(this.header, 1);
    const h = Atomics.load(this.header, 2);
    if (w === 0 || h === 0) return false;
    this.slotBytes = w * h * 3;
    const total = this.dataStart + this.count * this.slotBytes;
    if (this.count * this.slotBytes > this.budgetBytes) return this.off('the images exceed decode_cache_mb');
    try {
      // a container's /dev/shm is often 64 MB: check before allocating (posix_fallocate in map)
      const st = fs.statfsSync(SHM_ROOT);
      if (st.bavail * st.bsize < total - fs.fstatSync(this.fd).size)
        return this.off(`${SHM_ROOT} has too little room for ${(total / 1e6).toFixed(0)} MB`);
      this.slots = new Uint8Array(this.native.map(this.fd, total, true, true)).subarray(this.dataStart);
    } catch (e) {
      return this.off(`cannot map ${(total / 1e6).toFixed(0)} MB: ${(e as Error).message}`);
    }
    return true;
  }

  private off(reason: string): false {
    this.disabled = true;
    this.offReason = reason;
    return false;
  }

  get size(): number {
    let n = 0;
    for (let i = 0; i < this.count; i++) n += Atomics.load(this.states, i);
    return n;
  }

  get bytes(): number {
    return this.size * this.slotBytes;
  }

  describe(): string {
    const n = this.size;
    return (
      `${n} of ${this.count} images (${((n * this.slotBytes) / 1e6).toFixed(1)} MB) shared by the workers of this host; ` +
      `this worker since the start: hits ${this.hits}, misses ${this.misses}${this.disabled ? ` (off: ${this.offReason})` : ''}`
    );
  }

  get(_key: string, index?: number): RawImage | undefined {
    if (
      index === undefined ||
      index < 0 ||
      index >= this.count ||
      !this.ready() ||
      Atomics.load(this.states, index) !== 1
    ) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    const at = index * this.slotBytes;
    return {
      kind: 'raw',
      data: this.slots!.slice(at, at + this.slotBytes),
      width: Atomics.load(this.header, 1),
      height: Atomics.load(this.header, 2),
    };
  }

  put(_key: string, img: RawImage, index?: number): void {
    if (index === undefined || index < 0 || index >= this.count || this.disabled) return;
    // the first image decides the slot size for every worker
    if (Atomics.compareExchange(this.header, 1, 0, img.width) === 0) Atomics.store(this.header, 2, img.height);
    if (!this.ready() || img.width !== Atomics.load(this.header, 1) || img.height !== Atomics.load(this.header, 2))
      return;
    if (Atomics.load(this.states, index) === 1) return;
    this.slots!.set(img.data, index * this.slotBytes);
    Atomics.store(this.states, index, 1);
  }
}
