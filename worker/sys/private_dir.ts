/**
 * The check every job directory (ipc sockets, shared memory) passes before this process puts anything in it:
 * they live in world-writable places (/tmp, /dev/shm) under names others may guess.
 */
import * as fs from 'node:fs';

/** Why `dir` is not a private directory of this user (undefined: it is one). */
export function notPrivateDir(dir: string): string | undefined {
  const st = fs.lstatSync(dir);
  if (st.isSymbolicLink()) return `is a symlink (to ${fs.readlinkSync(dir)})`;
  if (!st.isDirectory()) return 'is not a directory';
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) return `belongs to uid ${st.uid}, not to this user (uid ${uid})`;
  if ((st.mode & 0o077) !== 0) return `has mode 0${(st.mode & 0o777).toString(8)}: others can reach into it`;
  return undefined;
}
