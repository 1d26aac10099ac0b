/**
 * Two nodes on one machine: two network namespaces joined by a veth pair, one launcher in each with the same
 * command (`--ips A,B`). Each finds its node rank from its own address; the four ranks all-reduce over TCP
 * through the real collectives. Needs root (ip netns): without root it says so and skips; as root or with CI set, a
 * failure to create the namespaces fails the test.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { makeJobSecret } from '../worker/collectives/secret.js';
import { CLI, COLLECTIVE_WORKER, tempDir, waitFor, type LaunchResult } from './helpers/launcher_spawn.js';
import { deleteNamespaces, ip, joinByVeth } from './helpers/netns.js';

const suffix = `${process.pid % 100000}`;
const NS = [`hl-a${suffix}`, `hl-b${suffix}`];
const VETH = [`hla${suffix}`, `hlb${suffix}`];
const IPS = ['10.231.7.1', '10.231.7.2'];

function setUp(): string | undefined {
  try {
    ip('netns', 'add', NS[0]);
  } catch (e) {
    return `cannot create network namespaces here (${String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim()})`;
  }
  ip('netns', 'add', NS[1]);
  joinByVeth(NS, VETH, IPS);
  return undefined;
}

/** A veth end counts as this node's address (Node lists only running interfaces) once the pair has carrier. */
function linksUp(): boolean {
  return [0, 1].every((i) =>
    execFileSync('ip', ['-n', NS[i], 'link', 'show', VETH[i]], { encoding: 'utf8' }).includes('state UP'),
  );
}

function tearDown(): void {
  deleteNamespaces(NS);
}

function launchIn(ns: string, args: string[]): Promise<LaunchResult> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

test('two nodes (network namespaces): node rank from the local address, global ranks, an all-reduce over TCP', async (t) => {
  try {
    // (inside the try: a set-up that fails half-way still has its namespaces deleted)
    const why = setUp();
    if (why !== undefined) {
      // only a machine that cannot have namespaces skips: as root, or in CI, a failure to make them is a failure
      if (process.getuid?.() === 0 || process.env.CI)
        assert.fail(`${why}; as root${process.env.CI ? ' or in CI (CI is set)' : ''} this test must run`);
      t.skip(why);
      return;
    }
    await waitFor(() => linksUp(), 'the veth pair to come up', 10_000);
    const dir = tempDir('launch-netns');
    const secretFile = path.join(dir, 'secret.json');
    fs.writeFileSync(secretFile, JSON.stringify(makeJobSecret(`netns-${suffix}`)), { mode: 0o600 });
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    const common = [
      '--ips',
      IPS.join(','),
      '--nproc_per_node',
      '2',
      '--started_port',
      '6170',
      '--secret_file',
      secretFile,
    ];
    const worker = [
      'run',
      '--',
      process.execPath,
      COLLECTIVE_WORKER,
      '--out',
      out,
      '--steps',
      '3',
      '--timeout-ms',
      '8000',
    ];
    const [a, b] = await Promise.all([
      launchIn(NS[0], [...common, '--log_dir', path.join(dir, 'logA'), ...worker]),
      launchIn(NS[1], [...common, '--log_dir', path.join(dir, 'logB'), ...worker]),
    ]);
    assert.equal(b.code, 0, `node 1:\n${b.stderr}`);
    assert.equal(a.code, 0, `node 0:\n${a.stderr}`);
    assert.match(a.stderr, /node 0 of 2 \(10\.231\.7\.1,10\.231\.7\.2\), 2 worker\(s\) here, world size 4/);
    assert.match(b.stderr, /node 1 of 2/);
    // ranks 0+1+2+3, each all-reducing a buffer filled with its rank
    assert.match(a.stdout, /rank 0 of 4: all-reduced sum 6/);
    assert.match(fs.readFileSync(path.join(dir, 'logB', 'workerlog.1'), 'utf8'), /rank 3 of 4: all-reduced sum 6/);
    const endpoints = fs.readFileSync(path.join(dir, 'logB', 'endpoints.log'), 'utf8');
    assert.match(endpoints, /rank 3: tcp:\/\/10\.231\.7\.2:6171/);
    assert.match(endpoints, /job netns-/);
  } finally {
    tearDown();
  }
});
