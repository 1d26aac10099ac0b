/**
 * Shared memory on this host: the job's directory on /dev/shm and the prebuilt mmap module (native/shm).
 * Used by the collectives (allReduce payloads between ranks, collectives/shm.ts) and by the data loader (decoded
 * images shared by the workers of a host, data/shared_decode_cache.ts).
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { shmJobDir } from '../../shared/env.js';
import { UsageError } from '../../shared/errors.js';
import { notPrivateDir } from './private_dir.js';

export const SHM_ROOT = '/dev/shm';

/** Why shared memory cannot be used here (undefined: it can). */
export function shmUnavailable(jobId: string, root?: string): string | undefined {
  try {
    const st = fs.statSync(root ?? SHM_ROOT);
    if (!st.isDirectory()) return `${root} is not a directory`;
    fs.accessSync(root ?? SHM_ROOT, fs.constants.W_OK);
  } catch (e) {
    return `${root ?? SHM_ROOT}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
  // under the launcher, the directory it made for this job (shared/env.ts shmJobDir)
  const dir = shmJobDir(jobId, root);
  try {
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    // lstat: a symlink planted by another user (job ids can be guessed) must not redirect our files, nor may a
    // directory another user made or can write into be used (nor tightened: files may be in it already); once
    // the directory is a real one of ours, /dev/shm's sticky bit keeps anyone else from replacing it
    const why = notPrivateDir(dir);
    if (why !== undefined)
      return why.startsWith('is a symlink') ? `${dir} is not a directory (a symlink?)` : `${dir} ${why}`;
  } catch (e) {
    return `${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
  return undefined;
}

/** open(2) flags that never follow a symlink at the last path component */
export const NO_FOLLOW = fs.constants.O_NOFOLLOW;

/**
 * Throws unless `fd` is a regular file of this user, mode 0600 or stricter, with one name. A usage error (exit 2),
 * like a secret file that is not private (launcher/secret_file.ts): the file was planted or left by someone else in
 * the job's directory, and a restart of the worker would meet the same file.
 */
export function assertPrivateFile(fd: number, file: string): void {
  const st = fs.fstatSync(fd);
  if (!st.isFile() || st.uid !== process.getuid?.() || (st.mode & 0o077) !== 0 || st.nlink > 1) {
    const mode = (st.mode & 0o777).toString(8);
    throw new UsageError(`${file} is not a private file of this user (uid ${st.uid}, mode ${mode}, links ${st.nlink})`);
  }
}

export interface NativeShm {
  map(fd: number, bytes: number, writable: boolean, allocate: boolean): ArrayBuffer;
  /** out1[i] (and out2[i]) = (a[i] + b[i]) / divisor */
  add(a: Float32Array, b: Float32Array, divisor: number, out1: Float32Array, out2?: Float32Array): void;
}

let native: NativeShm | null | undefined;
/** The prebuilt mmap module (native/shm), or null where it cannot be used. */
export function nativeShm(): NativeShm | null {
  if (native === undefined) {
    native = null;
    if (process.platform === 'linux' && process.arch === 'x64' && process.env.HARDNET_SHM_MMAP !== '0') {
      try {
        // dist/worker/collectives/ -> the package root
        const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
        native = createRequire(import.meta.url)(
          path.join(root, 'native', 'shm', 'prebuilt', 'linux-x64.node'),
        ) as NativeShm;
      } catch {
        /* pwrite/pread instead */
      }
    }
  }
  return native;
}
