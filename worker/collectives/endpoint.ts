/**
 * Binding a rank's own endpoint. ipc:// endpoints live in a per-job directory with mode 0700 (only this user can
 * reach the sockets); tcp:// endpoints are bound as given. A taken address is an error naming it.
 */
import { CollectiveError } from '../../shared/errors.js';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

export class EndpointError extends CollectiveError {}

export function ipcPath(endpoint: string): string | undefined {
  return endpoint.startsWith('ipc://') ? endpoint.slice('ipc://'.length) : undefined;
}

/** Create the socket's directory with mode 0700 (tighten it if it already exists and is ours). */
export function prepareIpcDir(socketPath: string): string {
  const dir = path.dirname(socketPath);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.statSync(dir);
  if ((st.mode & 0o077) !== 0 && st.uid === process.getuid?.()) fs.chmodSync(dir, 0o700);
  return dir;
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
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
  if (inUse) throw new EndpointError(`endpoint ${endpoint} is already in use by another process (a socket is listening at ${socketPath})`);
}

/** Remove this rank's socket file and, when it is the last one, the job directory. */
export function removeIpcPath(socketPath: string): void {
  try { fs.rmSync(socketPath, { force: true }); } catch { /* already gone */ }
  try { fs.rmdirSync(path.dirname(socketPath)); } catch { /* other ranks' sockets are still there, or already removed */ }
}
