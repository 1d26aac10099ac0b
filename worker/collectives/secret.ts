/**
 * The per-job secret: ZeroMQ CURVE keys that authenticate every collective socket.
 *
 * Contract between the launcher and its workers (the secret must never appear in argv, the environment,
 * `ps` output or logs, so it travels over an inherited pipe):
 *   - launcher: `const secret = makeJobSecret(jobId)`; spawn the worker with `stdio[3] = 'pipe'` and
 *     `HARDNET_SECRET_FD=3` in its environment; write `JSON.stringify(secret) + "\n"` to `child.stdio[3]`
 *     and end that stream.
 *   - worker: `readJobSecret(env.secretFd)` reads that one JSON line, closes the fd and validates the shape.
 *     `createProcessGroup()` does this itself when it is not handed a secret.
 *
 * Every rank's receiving socket is a CURVE server with the same server key pair; every sending socket is a
 * CURVE client with the same client key pair. The server PUBLIC key is secret too: a CURVE client cannot even
 * start the handshake without it, so a process that lacks the secret can neither connect nor inject data.
 */
import * as fs from 'node:fs';
import type { JobSecret } from '../../shared/env.js';
import { SecretError, validateJobSecret } from '../../shared/job_secret.js';

export type { JobSecret } from '../../shared/env.js';

export { makeJobSecret, SecretError, validateJobSecret } from '../../shared/job_secret.js';

/**
 * Worker side: read one JSON line from the inherited fd, then close it. Async because the launcher may write
 * after spawning; reads go through libuv's thread pool, so a blocking pipe does not stall the event loop.
 */
export async function readJobSecret(fd: number, timeoutMs = 30_000): Promise<JobSecret> {
  const where = `fd ${fd} (HARDNET_SECRET_FD)`;
  const chunks: Buffer[] = [];
  let total = 0;
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const buf = Buffer.alloc(4096);
      let n: number;
      try {
        n = await new Promise<number>((resolve, reject) =>
          fs.read(fd, buf, 0, buf.length, null, (err, bytes) => (err ? reject(err) : resolve(bytes))),
        );
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // a non-blocking pipe with nothing written yet
        if (code === 'EAGAIN' && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        throw new SecretError(`cannot read the job secret from ${where}: ${(err as Error).message}`);
      }
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
      if (buf.subarray(0, n).includes(0x0a)) break;
      if (total > 64 * 1024) throw new SecretError(`job secret on ${where} is longer than 64 KiB without a newline`);
    }
  } finally {
    try {
      fs.closeSync(fd);
    } catch {
      /* already closed: nothing to release */
    }
  }
  const text = Buffer.concat(chunks).toString('utf8');
  const line = text.split('\n')[0];
  if (line.trim() === '') throw new SecretError(`no job secret arrived on ${where} (the pipe was closed empty)`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    throw new SecretError(`job secret on ${where} is not valid JSON`);
  }
  return validateJobSecret(parsed, where);
}
