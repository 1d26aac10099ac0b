/**
 * A worker for the launcher's tests, run as `launch run -- node launcher_worker.js --out DIR [behaviour...]`.
 * It records what it was given (environment, pid, secret, its own child's pid) in DIR/rank<R>.json, then acts
 * out the failure the test asks for. Run without --out (as `node --test dist/test/` may do) it does nothing.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
  options: {
    out: { type: 'string' },
    'exit-rank': { type: 'string' },
    'exit-code': { type: 'string', default: '3' },
    'exit-after': { type: 'string', default: '0' },
    /** only fail on the attempt with this restart count */
    'fail-on-restart': { type: 'string' },
    /** exit 0 after this many ms (otherwise run until signalled) */
    'done-after': { type: 'string' },
    grandchild: { type: 'boolean', default: false },
    /** clean: SIGINT -> print and exit 0; ignore: ignore SIGINT and SIGTERM */
    'on-sigint': { type: 'string', default: 'default' },
    'read-secret': { type: 'boolean', default: false },
    /** rank 1 sends its job id to rank 0 over the ipc endpoints; rank 0 checks it is its own job's */
    exchange: { type: 'boolean', default: false },
  },
});

if (o.out === undefined) process.exit(0);
const env = process.env;
const rank = Number(env.RANK);
const restart = Number(env.HARDNET_RESTART_COUNT);

async function readSecret(): Promise<string | undefined> {
  if (!o['read-secret'] || env.HARDNET_SECRET_FD === undefined) return undefined;
  const fd = Number(env.HARDNET_SECRET_FD);
  const chunks: Buffer[] = [];
  for (;;) {
    const buf = Buffer.alloc(4096);
    const n = await new Promise<number>((res, rej) =>
      fs.read(fd, buf, 0, buf.length, null, (e, b) => (e ? rej(e) : res(b))),
    );
    if (n === 0) break;
    chunks.push(buf.subarray(0, n));
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function exchange(): Promise<void> {
  const zmq = await import('zeromq');
  const endpoints = (env.PADDLE_TRAINER_ENDPOINTS ?? '').split(',');
  // never hang a test: a lost message is a failure with its own exit code
  setTimeout(() => {
    console.error(`rank ${rank}: no exchange within 20 s`);
    process.exit(7);
  }, 20_000).unref();
  if (rank === 0) {
    const reply = new zmq.Reply({ linger: 0 });
    await reply.bind(endpoints[0]);
    const [msg] = await reply.receive();
    await reply.send('ok');
    if (msg.toString() !== env.HARDNET_JOB_ID) {
      console.error(`rank 0 of job ${env.HARDNET_JOB_ID} received a message of job ${msg.toString()}`);
      process.exit(5);
    }
    console.log(`rank 0 received its own job's message`);
  } else {
    // Request/Reply: rank 1 exits only after rank 0 has the message (zmq retries the connect until rank 0 binds)
    const request = new zmq.Request({ linger: 0 });
    request.connect(endpoints[0]);
    await request.send(env.HARDNET_JOB_ID ?? '');
    await request.receive();
  }
}

const secret = await readSecret();
let grandchildPid: number | undefined;
if (o.grandchild) {
  // a child that would outlive its parent if nobody killed the group: it ignores SIGTERM too
  const child = spawn(process.execPath, ['-e', "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000)"], {
    stdio: 'ignore',
  });
  grandchildPid = child.pid;
}
if (o['on-sigint'] === 'clean') {
  process.on('SIGINT', () => {
    console.log(`rank ${rank} stopping cleanly`);
    process.exit(0);
  });
} else if (o['on-sigint'] === 'ignore') {
  process.on('SIGINT', () => console.log(`rank ${rank} ignores SIGINT`));
  process.on('SIGTERM', () => console.log(`rank ${rank} ignores SIGTERM`));
}

const record = {
  pid: process.pid,
  grandchildPid,
  secret,
  env: Object.fromEntries(
    Object.entries(env).filter(([k]) =>
      /^(PADDLE_|FLAGS_|RANK|LOCAL_|WORLD_|MASTER_|GROUP_|TORCHELASTIC_|HARDNET_|CUDA_)/.test(k),
    ),
  ),
};
const file = path.join(o.out, `rank${rank}.restart${restart}.json`);
fs.writeFileSync(`${file}.tmp`, JSON.stringify(record));
fs.renameSync(`${file}.tmp`, file); // the test polls for the file; it must never see half of it

console.log(`rank ${rank} started (pid ${process.pid}, restart ${restart})`);
console.error(`rank ${rank} says this on stderr`);

if (o.exchange) await exchange();

const failHere =
  o['exit-rank'] !== undefined &&
  Number(o['exit-rank']) === rank &&
  (o['fail-on-restart'] === undefined || Number(o['fail-on-restart']) === restart);
if (failHere) {
  setTimeout(() => {
    console.log(`rank ${rank} fails now with exit code ${o['exit-code']}`);
    process.exit(Number(o['exit-code']));
  }, Number(o['exit-after']));
} else if (o['done-after'] !== undefined) {
  setTimeout(() => process.exit(0), Number(o['done-after']));
} else {
  setInterval(() => {}, 1000);
}
