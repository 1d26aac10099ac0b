/**
 * The job secret file (--secret_file): refused unless it is a regular file of this user that nobody else can read
 * or write; `launch secret FILE` makes one with mode 0600 and never overwrites; no error ever prints what the
 * file contains.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { makeJobSecret, validateJobSecret } from '../worker/collectives/secret.js';
import { CLI, launch, runCollect, tempDir } from './helpers/launcher_spawn.js';

const run = ['--nproc_per_node', '1', 'run', '--', process.execPath, '-e', ''];

function secretFile(dir: string, mode: number, content = JSON.stringify(makeJobSecret('sec-test'))): string {
  const file = path.join(dir, `secret-${mode.toString(8)}.json`);
  fs.writeFileSync(file, content);
  fs.chmodSync(file, mode);
  return file;
}

test('a secret file that group or others can read or write is refused, with the command that fixes it', async () => {
  const dir = tempDir('secret');
  for (const mode of [0o644, 0o640, 0o604, 0o620, 0o602, 0o666]) {
    const file = secretFile(dir, mode);
    const r = await launch(['--secret_file', file, '--log_dir', path.join(dir, 'log'), ...run]);
    assert.equal(r.code, 2, `mode ${mode.toString(8)} accepted:\n${r.stderr}`);
    assert.ok(r.stderr.includes(file), r.stderr);
    assert.match(r.stderr, new RegExp(`mode 0?${mode.toString(8)}`));
    assert.ok(r.stderr.includes(`chmod 600 ${file}`), r.stderr);
  }
  // 0600 and 0400 are fine
  for (const mode of [0o600, 0o400]) {
    const r = await launch(['--secret_file', secretFile(dir, mode), '--log_dir', path.join(dir, 'log'), ...run]);
    assert.equal(r.code, 0, r.stderr);
  }
});

test('a secret file of another user, or one that is not a regular file, is refused', async () => {
  const dir = tempDir('secret-owner');
  let foreign: string;
  if (process.getuid!() === 0) {
    foreign = secretFile(dir, 0o600);
    fs.chownSync(foreign, 65534, 65534);
  } else {
    foreign = '/etc/passwd'; // root's: another user's file whatever its mode
  }
  const uid = fs.statSync(foreign).uid;
  const r = await launch(['--secret_file', foreign, '--log_dir', path.join(dir, 'log'), ...run]);
  assert.equal(r.code, 2, r.stderr);
  assert.ok(r.stderr.includes(foreign), r.stderr);
  assert.match(r.stderr, new RegExp(`owned by uid ${uid}, not by this user \\(uid ${process.getuid!()}\\)`));

  const fifo = path.join(dir, 'link.json');
  fs.symlinkSync('/dev/zero', fifo);
  const z = await launch(['--secret_file', fifo, '--log_dir', path.join(dir, 'log'), ...run]);
  assert.equal(z.code, 2, z.stderr);
  assert.match(z.stderr, /not a regular file/);
});

test('a malformed secret file: the error names the file and what is wrong, never its content', async () => {
  const dir = tempDir('secret-parse');
  const material = 'Qx7TqZp0vW3mK8rYb2nH5jL1cF6dG4sA9eU0tXo'; // 40 characters, like a z85 key
  const leaks = (text: string) =>
    Array.from({ length: material.length - 4 }, (_, i) => material.slice(i, i + 5)).filter((w) => text.includes(w));
  const cases = [
    `{"jobId": "j", "curve": {"serverSecretKey": ${material}}}`, // not JSON: V8's message quotes the text around the error
    `{"jobId": "j", "curve": {"serverSecretKey": "${material}"`, // truncated
    `["${material}"]`, // JSON, wrong shape
    `{"jobId": "j", "curve": {"serverPublicKey": "${material}", "serverSecretKey": "${material}xx"}}`, // wrong keys
  ];
  for (const [i, content] of cases.entries()) {
    const file = path.join(dir, `bad${i}.json`);
    fs.writeFileSync(file, content, { mode: 0o600 });
    const r = await launch(['--secret_file', file, '--log_dir', path.join(dir, 'log'), ...run]);
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.includes(file), r.stderr);
    assert.deepEqual(leaks(r.stderr + r.stdout), [], `case ${i} printed the file's content:\n${r.stderr}`);
  }
});

function launchUnderUmask(umask: string, args: string[]) {
  return runCollect('/bin/sh', ['-c', `umask ${umask}; exec "$0" "$@"`, process.execPath, CLI, ...args]);
}

test('launch secret FILE writes a fresh job secret, mode 0600 whatever the umask, and never overwrites', async () => {
  const dir = tempDir('secret-new');
  const file = path.join(dir, 'job.secret');
  const r = await launchUnderUmask('000', ['secret', file, '--job_id', 'nightly-68']);
  assert.equal(r.code, 0, r.stderr);
  const st = fs.statSync(file);
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal(st.uid, process.getuid!());
  const secret = validateJobSecret(JSON.parse(fs.readFileSync(file, 'utf8')), file);
  assert.equal(secret.jobId, 'nightly-68');
  assert.ok(
    !r.stdout.includes(secret.curve.serverSecretKey) && !r.stderr.includes(secret.curve.serverSecretKey),
    'no key on the terminal',
  );
  assert.ok(r.stdout.includes(file), r.stdout);

  // an existing file (or a symlink planted at the name) is left alone
  const before = fs.readFileSync(file, 'utf8');
  const again = await launchUnderUmask('022', ['secret', file]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already exists/);
  assert.equal(fs.readFileSync(file, 'utf8'), before);
  const target = path.join(dir, 'target');
  const link = path.join(dir, 'planted');
  fs.symlinkSync(target, link);
  const planted = await launchUnderUmask('022', ['secret', link]);
  assert.equal(planted.code, 2, planted.stderr);
  assert.ok(!fs.existsSync(target), 'nothing written through the symlink');

  // the default job id is random; the file is accepted by --secret_file as it is
  const fresh = path.join(dir, 'fresh.secret');
  assert.equal((await launchUnderUmask('022', ['secret', fresh])).code, 0);
  const used = await launch(['--secret_file', fresh, '--log_dir', path.join(dir, 'log'), ...run]);
  assert.equal(used.code, 0, used.stderr);
});

test('several nodes without --secret_file: the message names launch secret', async () => {
  const r = await launch(['--ips', '10.0.0.1,10.0.0.2', '--node_rank', '0', 'run', '--', 'true']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /launch secret <file>/);
  assert.match(r.stderr, /shared filesystem/);
});
