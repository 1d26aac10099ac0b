/**
 * The agent as states and a result (launcher/agent.ts) and the shim's logic as a function (launcher/shim_logic.ts,
 * launcher/shim_protocol.ts): real worker processes under real shims for the agent; a real socket pair and a
 * real child process for the shim's logic, with the process-group operations recorded instead of performed.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { test } from 'node:test';
import winston from 'winston';
import { runAgent, type WorkerState } from '../launcher/agent.js';
import { openLogDir } from '../launcher/logs.js';
import { buildPlan } from '../launcher/plan.js';
import { runShim, shimExitCode } from '../launcher/shim_logic.js';
import {
  ShimMessageReader,
  ShimProtocolError,
  encodeShimMessage,
  type ShimMessage,
} from '../launcher/shim_protocol.js';
import { tempDir } from './helpers/launcher_spawn.js';

const quiet = winston.createLogger({ silent: true });

/** A worker that fails with exit code `code` as rank 1 in the first `failAttempts` attempts, else exits 0. */
function agentJob(dir: string, failAttempts: number, maxRestarts: number, code = 3) {
  const plan = buildPlan({
    devices: { gpus: null, nproc: 2 },
    nodes: { hosts: ['127.0.0.1'], nodeRank: 0 } as never,
    jobId: `agent-${path.basename(dir)}`,
    basePort: 6170,
    logDir: dir,
  });
  const script =
    `const r = Number(process.env.RANK), a = Number(process.env.HARDNET_RESTART_COUNT);` +
    `process.exit(r === 1 && a < ${failAttempts} ? ${code} : 0);`;
  const states: WorkerState[] = [];
  const logs = openLogDir(dir);
  const run = runAgent({
    plan,
    program: process.execPath,
    args: () => ['-e', script],
    maxRestarts,
    graceMs: 5000,
    logs,
    logger: quiet,
    onState: (s) => states.push(s),
  }).finally(() => logs.release());
  return { run, states };
}

test('agent: a failure is restarted while restarts are left, and the result says how the job ended', async () => {
  const ok = agentJob(tempDir('agent-ok'), 1, 2);
  assert.deepEqual(await ok.run, { state: 'SUCCEEDED', exitCode: 0, restarts: 1 });
  assert.deepEqual(ok.states, ['INIT', 'HEALTHY', 'FAILED', 'INIT', 'HEALTHY', 'SUCCEEDED']);

  const failed = agentJob(tempDir('agent-fail'), 5, 1);
  const result = await failed.run;
  assert.equal(result.state, 'FAILED');
  assert.equal(result.exitCode, 3);
  assert.equal(result.restarts, 1);
  assert.equal(result.state === 'FAILED' && result.failure.rank, 1);
  assert.deepEqual(failed.states, ['INIT', 'HEALTHY', 'FAILED', 'INIT', 'HEALTHY', 'FAILED']);

  // exit 2 is a usage or config error: restarts would only repeat it
  const usage = agentJob(tempDir('agent-usage'), 5, 2, 2);
  const r2 = await usage.run;
  assert.deepEqual([r2.state, r2.exitCode, r2.restarts], ['FAILED', 2, 0]);
  assert.deepEqual(usage.states, ['INIT', 'HEALTHY', 'FAILED']);
});

/** A process running runForeground(node, a script that writes its pid and sleeps); resolves once the pid is there. */
async function foreground(dir: string) {
  const pidFile = path.join(dir, 'pid');
  const script = `require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); setTimeout(() => {}, 60000);`;
  const cli = new URL('../launcher/cli.js', import.meta.url).href;
  const launcher = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { runForeground } = await import(${JSON.stringify(cli)}); process.exitCode = await runForeground(process.execPath, ['-e', ${JSON.stringify(script)}]);`,
    ],
    { stdio: 'ignore' },
  );
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    launcher.once('exit', (code, signal) => r({ code, signal })),
  );
  const t0 = Date.now();
  while (!fs.existsSync(pidFile) || fs.readFileSync(pidFile, 'utf8') === '') {
    if (Date.now() - t0 > 30_000) throw new Error('the foreground program did not start');
    await new Promise((r) => setTimeout(r, 20));
  }
  return { launcher, ended, pid: Number(fs.readFileSync(pidFile, 'utf8')) };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
async function gone(pid: number, ms: number): Promise<boolean> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !alive(pid);
}

test('a foreground command dies with the launcher (SIGKILL), and a SIGINT to the launcher alone ends both', async () => {
  const dir = tempDir('fg');
  const killed = await foreground(dir);
  killed.launcher.kill('SIGKILL');
  await killed.ended;
  assert.ok(await gone(killed.pid, 15_000), 'the program outlived its SIGKILLed launcher');

  fs.rmSync(path.join(dir, 'pid'));
  const stopped = await foreground(dir);
  stopped.launcher.kill('SIGINT');
  assert.deepEqual(
    await stopped.ended,
    { code: null, signal: 'SIGINT' },
    'the launcher ends by the signal that ended the program',
  );
  assert.ok(await gone(stopped.pid, 15_000));
  fs.rmSync(dir, { recursive: true, force: true });
});

test('shim protocol: messages round-trip across arbitrary chunking; anything else is refused', () => {
  const msgs: ShimMessage[] = [
    { kind: 'started', pid: 1234 },
    { kind: 'spawnError', error: 'nope: spawn nope ENOENT' },
    { kind: 'exited', code: null, signal: 'SIGKILL' },
    { kind: 'exited', code: 3, signal: null },
  ];
  const bytes = msgs.map(encodeShimMessage).join('');
  const reader = new ShimMessageReader();
  const got: ShimMessage[] = [];
  for (let i = 0; i < bytes.length; i += 7) got.push(...reader.push(bytes.slice(i, i + 7)).messages);
  assert.deepEqual(got, msgs);
  const refused = (text: string) => new ShimMessageReader().push(text).error;
  assert.ok(refused('{"pid": 5}\n') instanceof ShimProtocolError);
  assert.ok(refused('{"kind":"started","pid":-1}\n') instanceof ShimProtocolError);
  assert.ok(refused('not json\n') instanceof ShimProtocolError);
  assert.match(refused('x'.repeat(70_000))!.message, /line over/);
  // the messages before a bad line are kept; nothing after it is read
  const cut = new ShimMessageReader();
  const first = cut.push(
    `${encodeShimMessage({ kind: 'started', pid: 7 })}garbage\n${encodeShimMessage({ kind: 'exited', code: 0, signal: null })}`,
  );
  assert.deepEqual(first.messages, [{ kind: 'started', pid: 7 }]);
  assert.ok(first.error instanceof ShimProtocolError);
  assert.deepEqual(cut.push(encodeShimMessage({ kind: 'exited', code: 0, signal: null })), { messages: [] });
  assert.equal(shimExitCode(3, null), 3);
  assert.equal(shimExitCode(null, 'SIGKILL'), 137);
});

/** Run the shim's logic on a real socket pair: returns the launcher's end, what the shim did, and its exit. */
async function shimOn(program: string, args: string[], others: () => number) {
  const dir = tempDir('shim');
  const sock = path.join(dir, 'l.sock');
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(sock, r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const shimEnd = net.connect(sock);
  const launcherEnd = await accepted;
  const closed = new Promise((r) => launcherEnd.once('close', r));
  server.close();
  const kills: NodeJS.Signals[] = [];
  let child: ChildProcess | undefined;
  const exited = new Promise<number>((resolve) =>
    runShim(
      {
        program,
        lifeline: shimEnd,
        start: () => (child = spawn(program, args, { stdio: 'ignore' })),
        othersInGroup: others,
        killGroup: (s) => kills.push(s),
        exit: resolve,
      },
      { orphanGraceMs: 100, leftoverGraceMs: 100, pollMs: 10 },
    ),
  );
  const reader = new ShimMessageReader();
  const messages: ShimMessage[] = [];
  launcherEnd.on('data', (c) => messages.push(...reader.push(c).messages));
  return {
    launcherEnd,
    closed,
    kills,
    exited,
    messages,
    cleanup: () => {
      child?.kill('SIGKILL'); // the group operations were only recorded: end the worker for real
      launcherEnd.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('shim logic: reports pid and exit, clears what the worker left, exits with its code', async () => {
  const s = await shimOn(process.execPath, ['-e', 'process.exit(3)'], () => 0);
  assert.equal(await s.exited, 3);
  await s.closed;
  assert.equal(s.messages[0].kind, 'started');
  assert.deepEqual(s.messages[1], { kind: 'exited', code: 3, signal: null });
  assert.deepEqual(s.kills, [], 'nothing left in the group: no signal');
  s.cleanup();

  // left-over children that ignore SIGTERM get SIGKILL after the grace
  const stubborn = await shimOn(process.execPath, ['-e', 'process.exit(0)'], () => 1);
  assert.equal(await stubborn.exited, 0);
  assert.deepEqual(stubborn.kills, ['SIGTERM', 'SIGKILL']);
  stubborn.cleanup();

  const missing = await shimOn('/nonexistent/program', [], () => 0);
  assert.equal(await missing.exited, 127);
  await missing.closed;
  assert.equal(missing.messages[0].kind, 'spawnError');
  assert.match((missing.messages[0] as { error: string }).error, /^\/nonexistent\/program: .*ENOENT/);
  missing.cleanup();
});

test('shim logic: the launcher gone (lifeline closed) clears the whole group, SIGKILL after the grace', async () => {
  const s = await shimOn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], () => 1);
  s.launcherEnd.destroy();
  const t0 = Date.now();
  while (s.kills.length < 2 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(s.kills, ['SIGTERM', 'SIGKILL']);
  s.cleanup();
});
