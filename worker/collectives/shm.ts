/**
 * Same-host payloads through shared memory: the bulk bytes of an allReduce between two ranks on one host go
 * through a file on /dev/shm (tmpfs, i.e. RAM) instead of through the ZeroMQ socket; the ZeroMQ message that
 * announces them still carries the header (job id, collective, chunk, length) and nothing else.
 *
 * Why: over a unix socket every byte is copied twice by the kernel and once more handled by libzmq's I/O thread,
 * and each received message lands in a freshly malloc'd buffer, all of it CPU time taken from training on the
 * same cores (bench:allreduce --profile). With pwrite/pread on tmpfs the two copies
 * remain, but they go straight from the summation blocks to the file and from the file into the caller's array,
 * on the rank's own thread. NCCL's SHM transport does the same for ranks on one host.
 *
 * Better still, the files are mapped into both processes (native/shm: Node has no mmap, and the packages that add
 * it compile at install time): then a payload is one user-space memcpy into the mapping and one out of it, at
 * memory speed, with no system call at all. Where the prebuilt module cannot load (not linux-x64, or
 * HARDNET_SHM_MMAP=0) the same files are written and read with pwrite/pread.
 *
 * Layout: rank r writes what it would send to rank r+1 into its own pair of files, the one of the allReduce's
 * parity, at running offsets from 0. Reuse is safe without acknowledgements: rank r can only start allReduce
 * k+2 after finishing k+1, which needs every rank's contribution to k+1, and rank r+1 contributes to k+1 only
 * after it has read everything of k. (One file with two regions would not do: consecutive calls may differ in
 * size, and a region sized for one call could overlap the other's.)
 *
 * Nothing is left in RAM after a crash: the reader unlinks the file as soon as it has opened it (the pages live
 * until both processes have closed it), and the launcher removes the job's directory when the job ends.
 * Access: a 0700 directory of this user, files 0600; a process of another user can neither read nor write them.
 */
import { CollectiveError } from '../../shared/errors.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { shmJobDir, shmJobDirFromLauncher } from '../../shared/env.js';
import { assertPrivateFile, nativeShm, NO_FOLLOW } from '../sys/shm.js';

export { nativeShm, SHM_ROOT, shmUnavailable, type NativeShm } from '../sys/shm.js';

function shmFilePath(jobId: string, rank: number, parity: number, root: string | undefined): string {
  return path.join(shmJobDir(jobId, root), `ring${rank}.${parity}.bin`);
}

function tryRemove(file: string): void {
  try {
    fs.rmSync(file, { force: true });
  } catch {
    /* already gone */
  }
  // the launcher's directory stays for the whole job (it removes it); one a rank made goes with its last file
  if (!shmJobDirFromLauncher())
    try {
      fs.rmdirSync(path.dirname(file));
    } catch {
      /* other ranks' files are still there, or already removed */
    }
}

/** The two files (even and odd allReduce calls) this rank writes its ring payloads into; its successor reads them. */
export class ShmWriter {
  private fds: number[] | undefined;
  private readonly maps: (Uint8Array | undefined)[] = [undefined, undefined];
  private readonly reserved = [0, 0];

  private constructor(readonly files: string[]) {
    // a name left by an earlier group of this rank (whose reader never opened it) is replaced, never followed
    const { O_RDWR, O_CREAT, O_EXCL } = fs.constants;
    this.fds = files.map((f) => {
      fs.rmSync(f, { force: true });
      return fs.openSync(f, O_RDWR | O_CREAT | O_EXCL | NO_FOLLOW, 0o600);
    });
  }

  static create(jobId: string, rank: number, root?: string): ShmWriter {
    return new ShmWriter([0, 1].map((parity) => shmFilePath(jobId, rank, parity, root)));
  }

  get mapped(): boolean {
    return nativeShm() !== null;
  }

  /**
   * Make room for `bytes` in the file of `parity` (its pages are allocated now, so that a full /dev/shm is this
   * error, ENOSPC, and not a SIGBUS on a later store into the mapping).
   */
  reserve(parity: number, bytes: number): void {
    if (bytes <= this.reserved[parity]) return;
    const m = nativeShm();
    if (m && this.fds) this.maps[parity] = new Uint8Array(m.map(this.fds[parity], bytes, true, true));
    this.reserved[parity] = bytes;
  }

  /** The mapped bytes [position, position + 4 * floats) of a file as floats, when mapped and reserved that far. */
  view(parity: number, position: number, floats: number): Float32Array | undefined {
    const m = this.maps[parity];
    if (m === undefined || position + floats * 4 > m.length) return undefined;
    return new Float32Array(m.buffer, m.byteOffset + position, floats);
  }

  write(parity: number, src: Uint8Array, position: number): void {
    if (this.fds === undefined) throw new CollectiveError(`shared-memory file ${this.files[parity]} is closed`);
    const view = this.maps[parity];
    if (view !== undefined && position + src.length <= view.length) {
      view.set(src, position);
      return;
    }
    const fd = this.fds[parity];
    for (let done = 0; done < src.length; ) done += fs.writeSync(fd, src, done, src.length - done, position + done);
  }

  close(): void {
    if (this.fds === undefined) return;
    for (const fd of this.fds) fs.closeSync(fd);
    this.fds = undefined;
    this.maps.fill(undefined); // unmapped when collected
    for (const f of this.files) tryRemove(f); // normally the reader has unlinked them already
  }
}

function openPrivate(file: string): number {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | NO_FOLLOW);
  try {
    assertPrivateFile(fd, `shared-memory file ${file}`);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  return fd;
}

/** The predecessor's two files, opened on its first shared-memory message and unlinked at once. */
export class ShmReader {
  private fds: number[] | undefined;
  private readonly maps: (Uint8Array | undefined)[] = [undefined, undefined];

  private constructor(readonly files: string[]) {
    const fds: number[] = [];
    try {
      for (const f of files) fds.push(openPrivate(f));
    } catch (err) {
      for (const fd of fds) fs.closeSync(fd);
      throw err;
    }
    this.fds = fds;
    for (const f of files) tryRemove(f);
  }

  static open(jobId: string, rank: number, root?: string): ShmReader {
    return new ShmReader([0, 1].map((parity) => shmFilePath(jobId, rank, parity, root)));
  }

  /** The mapping of a file covering [position, end), mapped (again, if the writer grew the file) as needed. */
  private mapped(parity: number, position: number, end: number): Uint8Array | undefined {
    const m = nativeShm();
    if (m === null || this.fds === undefined) return undefined;
    let view = this.maps[parity];
    if (view === undefined || end > view.length) {
      const size = fs.fstatSync(this.fds[parity]).size;
      if (end > size)
        throw new CollectiveError(
          `shared-memory file ${this.files[parity]} is ${size} bytes, too short for the ${end - position} bytes announced at ${position}`,
        );
      view = this.maps[parity] = new Uint8Array(m.map(this.fds[parity], size, false, false));
    }
    return view;
  }

  /** The announced floats at `position` of a file, read in place (undefined when not mapped). */
  view(parity: number, position: number, floats: number): Float32Array | undefined {
    const m = this.mapped(parity, position, position + floats * 4);
    return m && new Float32Array(m.buffer, m.byteOffset + position, floats);
  }

  /** Fill `dst` from the file of that parity at `position`; the writer wrote those bytes before announcing them. */
  read(parity: number, dst: Uint8Array, position: number): void {
    if (this.fds === undefined) throw new CollectiveError(`shared-memory file ${this.files[parity]} is closed`);
    const fd = this.fds[parity];
    const end = position + dst.length;
    const view = this.mapped(parity, position, end);
    if (view) {
      dst.set(view.subarray(position, end));
      return;
    }
    for (let done = 0; done < dst.length; ) {
      const n = fs.readSync(fd, dst, done, dst.length - done, position + done);
      if (n === 0)
        throw new CollectiveError(
          `shared-memory file ${this.files[parity]} ends at ${position + done}, before the ${dst.length} bytes announced at ${position}`,
        );
      done += n;
    }
  }

  close(): void {
    if (this.fds === undefined) return;
    for (const fd of this.fds) fs.closeSync(fd);
    this.fds = undefined;
    this.maps.fill(undefined);
  }
}
