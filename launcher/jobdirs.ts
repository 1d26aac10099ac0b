/**
 * The job's private directories on this node (the ipc sockets under the temp directory, shared memory under
 * /dev/shm): world-writable places where another user may have created the name first, as a directory they
 * own, one with a loose mode, or a symlink to somewhere else. So the launcher creates each one itself (mkdir,
 * which fails on any existing name, symlinks included), checks what it made with lstat (owner, mode), uses
 * names with a random part, and on the way out removes only what it created, without ever throwing.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LaunchError } from './plan.js';

function describeExisting(dir: string): string {
  try {
    const st = fs.lstatSync(dir);
    const what = st.isSymbolicLink()
      ? `a symlink to ${fs.readlinkSync(dir)}`
      : st.isDirectory()
        ? 'a directory'
        : 'a file';
    return `${what} of uid ${st.uid}, mode 0${(st.mode & 0o777).toString(8)}`;
  } catch {
    return 'something that vanished again';
  }
}

/** mkdir `dir` with mode 0700 and check the result; throws LaunchError when the name is taken. */
export function createPrivateDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      throw new LaunchError(
        `the job directory ${dir} already exists (${describeExisting(dir)}) and was not made by this launch; ` +
          'another user may be squatting the name. Nothing was started; launch again (the name has a fresh random part every time)',
      );
    }
    throw new LaunchError(`cannot create the job directory ${dir}: ${code ?? (e as Error).message}`);
  }
  // What mkdir made is ours unless it was swapped in the instant since; the sticky bit of /tmp and /dev/shm keeps
  // anyone else from replacing it afterwards.
  const st = fs.lstatSync(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid)) {
    throw new LaunchError(
      `the job directory ${dir} was replaced right after it was created (${describeExisting(dir)}); nothing was started`,
    );
  }
  if ((st.mode & 0o777) !== 0o700) fs.chmodSync(dir, 0o700); // a umask may have taken bits away; never added any
}

/** A fresh private directory `<root>/<prefix>-<random>`, drawing another name if one is taken. */
export function createFreshPrivateDir(root: string, prefix: string): string {
  for (let attempt = 0; ; attempt++) {
    const dir = path.join(root, `${prefix}-${randomBytes(4).toString('hex')}`);
    try {
      createPrivateDir(dir);
      return dir;
    } catch (e) {
      if (attempt >= 4 || !fs.existsSync(root) || !(e instanceof LaunchError) || !/already exists/.test(e.message))
        throw e;
    }
  }
}

/** Remove a directory this launch created; a failure is reported, never thrown (the job's result stands). */
export function removePrivateDir(dir: string, warn: (msg: string) => void): void {
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch (e) {
    warn(
      `could not remove the job directory ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; remove it by hand`,
    );
  }
}
