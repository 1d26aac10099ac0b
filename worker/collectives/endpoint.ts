/**
 * Binding a rank's own endpoint. ipc:// endpoints live in a per-job directory with mode 0700 (only this user can
 * reach the sockets); tcp:// endpoints are bound as given. A taken address is an error naming it.
 */
import { CollectiveError } from '../../shared/errors.js';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { notPrivateDir } from '../sys/private_dir.js';

export class EndpointError extends CollectiveError {}

export function ipcPath(endpoint: string): string | undefined {
  return endpoint.startsWith('ipc://') ? endpoint.slice('ipc://'.length) : undefined;
}

/**
 * Make sure the socket's directory is private: create it with mode 0700, or, when it exists (the launcher or
 * another rank of the job made it), accept it only as a real directory (lstat: not a symlink) of this user that
 * nobody else can enter. A looser one is refused, not tightened: others may already have put files in it.
 * Returns whether this call created it (and so may remove it at the end).
 */
export function prepareIpcDir(socketPath: string): boolean {
  const dir = path.dirname(socketPath);
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
      throw new EndpointError(
        `cannot create the socket directory ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
  }
  const why = notPrivateDir(dir);
  if (why !== undefined)
    throw new EndpointError(
      `the socket directory ${dir} ${why}; it was not made by this job (another user squatting the name?)`,
    );
  return false;
}

/**
 * libzmq's ipc bind silently unlinks whatever file is at the path, which would steal a live socket from another
 * process. Probe first: a refused connection means a stale file left by a crashed run (safe to replace), an
 * accepted one means another process owns the address.
 */
export async function assertIpcPathFree(socketPath: string, endpoint: string): Promise<void> {
  if (!fs.existsSync(socketPath)) return;
  const inUse = await new Promise<boolean>((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (inUse)
    throw new EndpointError(
      `endpoint ${endpoint} is already in use by another process (a socket is listening at ${socketPath})`,
    );
}

/**
 * Remove this rank's socket file and, when this rank created the directory and it is empty, the directory. One the
 * launcher made stays for the whole job (across restarts), so that its name cannot be taken in between.
 */
export function removeIpcPath(socketPath: string, createdDir: boolean): void {
  try {
    fs.rmSync(socketPath, { force: true });
  } catch {
    /* already gone */
  }
  if (createdDir)
    try {
      fs.rmdirSync(path.dirname(socketPath));
    } catch {
      /* other ranks' sockets are still there, or already removed */
    }
}
