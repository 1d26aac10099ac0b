/**
 * The job secret as a file (--secret_file), for jobs that span nodes: every launcher must hand its workers the
 * same CURVE keys, and keys never travel in argv or the environment. Whoever can read the file can join the job
 * and whoever can write it can choose its keys, so it must be this user's own regular file, unreadable and
 * unwritable by group and others (as ssh insists for private keys). `launch secret FILE` makes one.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import type { JobSecret } from '../shared/env.js';
import { makeJobSecret, SecretError, validateJobSecret } from '../shared/job_secret.js';

/** a secret is a few hundred bytes */
const MAX_SECRET_BYTES = 64 * 1024;

/** Read and check --secret_file. Errors name the file and the fix; none prints any of its content. */
export function readSecretFile(file: string, flag = '--secret_file'): JobSecret {
  const where = `${flag} ${file}`;
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO at the path must not hang the launcher; it is refused below as not a regular file
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    throw new SecretError(`${where}: cannot open it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let text: string;
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new SecretError(`${where} is not a regular file`);
    const uid = process.getuid?.();
    if (uid !== undefined && st.uid !== uid) {
      throw new SecretError(
        `${where} is owned by uid ${st.uid}, not by this user (uid ${uid}): a job secret must be your own file; make one with launch secret <file>`,
      );
    }
    const mode = st.mode & 0o777;
    if ((mode & 0o077) !== 0) {
      const who = [(mode & 0o070) !== 0 ? 'group' : '', (mode & 0o007) !== 0 ? 'others' : '']
        .filter(Boolean)
        .join(' and ');
      throw new SecretError(
        `${where} has mode 0${mode.toString(8)}: ${who} can read or write it, and with it join the job. Fix: chmod 600 ${file}`,
      );
    }
    if (st.size > MAX_SECRET_BYTES)
      throw new SecretError(`${where} is ${st.size} bytes; a job secret is a few hundred`);
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < buf.length) {
      const got = fs.readSync(fd, buf, n, buf.length - n, n);
      if (got === 0) break;
      n += got;
    }
    text = buf.subarray(0, n).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // JSON.parse's message quotes the text around the error, which here is key material
    throw new SecretError(
      `${where} is not valid JSON (${text.length} characters; expected one {jobId, curve} object as launch secret writes it)`,
    );
  }
  try {
    return validateJobSecret(parsed, where);
  } catch (e) {
    throw new SecretError((e as Error).message);
  }
}

/** A fresh job id for a secret file: random, so that other users cannot guess the job's names. */
export function randomJobId(): string {
  return `job-${randomBytes(6).toString('hex')}`;
}

/**
 * Write a fresh job secret to `file`, created by this call (O_CREAT|O_EXCL: never an existing file, never through a
 * symlink planted at the name) with mode 0600 whatever the umask.
 */
export function writeSecretFile(file: string, jobId: string): JobSecret {
  let fd: number;
  try {
    fd = fs.openSync(
      file,
      fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW,
      0o600,
    );
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST')
      throw new SecretError(
        `${file} already exists: launch secret never replaces a secret (jobs may be using it); remove it first or choose another name`,
      );
    throw new SecretError(`cannot create ${file}: ${code ?? (e as Error).message}`);
  }
  const secret = makeJobSecret(jobId);
  try {
    fs.fchmodSync(fd, 0o600);
    fs.writeSync(fd, JSON.stringify(secret) + '\n');
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
    throw new SecretError(`cannot write ${file}: ${(e as Error).message}`);
  }
  fs.closeSync(fd);
  return secret;
}
