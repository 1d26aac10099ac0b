/**
 * The ring link of one rank: an authenticated (CURVE or PLAIN+ZAP, see SecurityMechanism) PULL socket bound on
 * its own endpoint (fed by the predecessor) and a PUSH socket connected to the successor's endpoint. Each process
 * binds the socket it uses, so there is no find-a-free-port-then-bind race.
 *
 * Nothing may hang: every receive and send polls with a short socket timeout so that the collective's deadline,
 * the 60 s warning and a peer's disconnect (process death closes its sockets; a stopped process misses ZMTP
 * heartbeats) are noticed while waiting. A rank that fails sends an `abort` message around the ring naming the
 * rank to blame, so every rank reports the same culprit instead of blaming its own neighbour.
 */
import * as zmq from 'zeromq';
import { CollectiveError } from '../../shared/errors.js';
import type { JobSecret } from '../../shared/env.js';
import { assertIpcPathFree, EndpointError, ipcPath, prepareIpcDir, removeIpcPath } from './endpoint.js';
import { plainCredentials, registerZapDomain, unregisterZapDomain, zapDomainOf } from './zap.js';
import * as fs from 'node:fs';
import { SHM_ROOT, ShmReader, ShmWriter, shmUnavailable } from './shm.js';
import {
  decodeHeader,
  describe,
  encodeHeader,
  FIXED_HEADER_BYTES,
  Op,
  OP_NAMES,
  payloadInSharedMemory,
  WireDtype,
  type Header,
} from './wire.js';

export type LogFn = (level: 'info' | 'warn' | 'error', msg: string) => void;

export { CollectiveError };

export interface LinkOptions {
  rank: number;
  worldSize: number;
  endpoints: string[];
  jobId: string;
  secret: JobSecret;
  timeoutMs: number;
  warnAfterMs: number;
  heartbeatMs: number;
  security?: SecurityMechanism;
  /** allReduce payloads to a successor on this host go through /dev/shm (shm.ts); default true */
  sharedMemory?: boolean;
  /**
   * the largest payload frame any rank sends (the ring's chunk size, or SMALL_PAYLOAD_BYTES if larger); the
   * receiving socket drops a connection that sends a larger frame before allocating it
   */
  maxPayloadBytes: number;
  log: LogFn;
}

/** payloads that are not chunks (allGather values, barrier, abort) stay below this */
export const SMALL_PAYLOAD_BYTES = 64 * 1024;
/** how often a warning about rejected peers may be written; the ones in between are counted in the next */
const REJECT_WARN_INTERVAL_MS = 10_000;

/** At most one warning line per interval about one kind of thing; the rest are counted in the next line. */
class RateLimitedWarning {
  private last = -Infinity;
  private unreported = 0;
  constructor(
    private readonly log: LogFn,
    private readonly intervalMs = REJECT_WARN_INTERVAL_MS,
  ) {}
  warn(msg: string): void {
    const now = Date.now();
    if (now - this.last < this.intervalMs) {
      this.unreported++;
      return;
    }
    const more = this.unreported;
    this.unreported = 0;
    this.last = now;
    this.log('warn', more > 0 ? `${msg} (and ${more} more rejected since the last such warning)` : msg);
  }
  flush(summary: (n: number) => string): void {
    if (this.unreported > 0) this.log('warn', summary(this.unreported));
    this.unreported = 0;
  }
}

/**
 * How a connection proves it belongs to the job. 'curve' (the default everywhere): CURVE keys from the job secret,
 * authenticated and encrypted, several times slower than a plain stream; on one host the allReduce payloads go through
 * shared memory, so only headers cross the sockets and the encryption costs nothing measurable. 'plain': PLAIN
 * credentials derived from the job secret, checked by a ZAP handler (authenticated, not encrypted; full speed),
 * for socket payloads on one host when shared memory is off and speed matters more than encryption.
 */
export type SecurityMechanism = 'curve' | 'plain';

const DEFAULT_SECURITY: SecurityMechanism = 'curve';

/** What the rank is doing right now, for warnings and errors. */
export interface OpContext {
  name: string;
  seq: number;
  started: number;
  deadline: number;
  warned: boolean;
  /** messages received in this collective so far */
  received: number;
  /** ranks whose data this rank has not yet seen in this collective */
  missing(): number[];
}

/** Poll granularity while waiting: bounds how late a deadline, warning or disconnect is noticed. */
const POLL_MS = 200;
/** After a peer disconnects, messages it sent before dying may still be queued: give them this long to drain. */
const DRAIN_GRACE_MS = 300;
/** How long a rank that is only stalled waits past its deadline for the abort naming the real culprit. */
const ABORT_WAIT_MS = 1500;

export class RingLink {
  readonly prev: number;
  readonly next: number;
  private readonly jobBytes: Buffer;
  private prevGoneAt: number | undefined;
  private nextGoneAt: number | undefined;
  private failure: CollectiveError | undefined;
  private closed = false;
  private recvTimeoutSet = -2;
  private sendTimeoutSet = -2;
  private readonly ownIpcPath: string | undefined;
  private shmIn: ShmReader | undefined;
  /** bytes of each parity's shared-memory file already written once (their pages exist) */
  private readonly shmHave = [0, 0];
  private shmWarned = false;
  private readonly rejectWarning: RateLimitedWarning;
  private readonly ignoredWarning: RateLimitedWarning;

  private constructor(
    private readonly o: LinkOptions,
    private readonly pull: zmq.Pull,
    private readonly push: zmq.Push,
    ipcSocketPath: string | undefined,
    private readonly createdIpcDir: boolean,
    private readonly zapDomain: string,
    private readonly shmOut: ShmWriter | undefined,
  ) {
    this.prev = (o.rank + o.worldSize - 1) % o.worldSize;
    this.next = (o.rank + 1) % o.worldSize;
    this.jobBytes = Buffer.from(o.jobId, 'utf8');
    this.ownIpcPath = ipcSocketPath;
    this.rejectWarning = new RateLimitedWarning(o.log);
    this.ignoredWarning = new RateLimitedWarning(o.log);
    this.watchPull();
    this.watchPush();
  }

  static async open(o: LinkOptions): Promise<RingLink> {
    const own = o.endpoints[o.rank];
    const nextRank = (o.rank + 1) % o.worldSize;
    const heartbeat = {
      heartbeatInterval: o.heartbeatMs,
      heartbeatTimeout: o.heartbeatMs * 3,
      heartbeatTimeToLive: o.heartbeatMs * 3,
    };
    // one mechanism for both sockets: every rank of the job binds and connects the same way
    const mech = o.security ?? DEFAULT_SECURITY;
    const creds = plainCredentials(o.secret);
    // Both mechanisms go through the ZAP handler, registered before the bind: without it libzmq admits any CURVE
    // client that knows the server public key, whatever its own key.
    const zapDomain = zapDomainOf(o.secret);
    await registerZapDomain(
      zapDomain,
      mech === 'plain'
        ? { mechanism: 'PLAIN', ...creds }
        : { mechanism: 'CURVE', clientPublicKeys: [o.secret.curve.clientPublicKey] },
    );
    const pull = new zmq.Pull({
      ...(mech === 'curve'
        ? { curveServer: true, curveSecretKey: o.secret.curve.serverSecretKey, zapDomain }
        : { plainServer: true, zapDomain }),
      linger: 0,
      // a frame larger than any the job sends is refused from its length, before libzmq allocates it
      maxMessageSize:
        Math.max(o.maxPayloadBytes, SMALL_PAYLOAD_BYTES) + FIXED_HEADER_BYTES + Buffer.byteLength(o.jobId),
      ...heartbeat,
    });
    const push = new zmq.Push({
      ...(mech === 'curve'
        ? {
            curveServerKey: o.secret.curve.serverPublicKey,
            curvePublicKey: o.secret.curve.clientPublicKey,
            curveSecretKey: o.secret.curve.clientSecretKey,
          }
        : { plainUsername: creds.username, plainPassword: creds.password }),
      linger: 0,
      // ring neighbours must not be dropped: queue rather than fail while the successor is still starting
      reconnectInterval: 50,
      ...heartbeat,
    });
    const sockPath = ipcPath(own);
    let createdDir = false;
    try {
      if (sockPath !== undefined) {
        createdDir = prepareIpcDir(sockPath);
        await assertIpcPathFree(sockPath, own);
      }
      await pull.bind(own);
    } catch (err) {
      pull.close();
      push.close();
      unregisterZapDomain(zapDomain);
      if (err instanceof EndpointError) throw new CollectiveError(`rank ${o.rank}: ${err.message}`, o.rank);
      const code = (err as NodeJS.ErrnoException).code;
      const why =
        code === 'EADDRINUSE'
          ? 'the address is already in use (another job or a stale process holds it)'
          : (err as Error).message;
      throw new CollectiveError(`rank ${o.rank} cannot bind its endpoint ${own}: ${why}`, o.rank);
    }
    push.connect(o.endpoints[nextRank]);
    let shmOut: ShmWriter | undefined;
    if (o.sharedMemory !== false && sockPath !== undefined && ipcPath(o.endpoints[nextRank]) !== undefined) {
      const why = shmUnavailable(o.jobId);
      try {
        if (why === undefined) shmOut = ShmWriter.create(o.jobId, o.rank);
      } catch (err) {
        o.log(
          'warn',
          `rank ${o.rank}: cannot create its shared-memory file (${(err as Error).message}); allReduce payloads go through the socket`,
        );
      }
      if (why !== undefined)
        o.log('warn', `rank ${o.rank}: no shared memory (${why}); allReduce payloads go through the socket`);
    }
    return new RingLink(o, pull, push, sockPath, createdDir, zapDomain, shmOut);
  }

  /**
   * Failed CURVE handshakes (strangers) also end in a 'disconnect' event on the bound socket; count them so that
   * only the authenticated predecessor's disconnect is taken as "the predecessor is gone".
   */
  private watchPull(): void {
    let strangerDisconnectsDue = 0;
    let preAuth = 0;
    let authed = 0;
    void (async () => {
      try {
        for await (const ev of this.pull.events) {
          if (ev.type === 'accept') preAuth++;
          else if (ev.type === 'handshake') {
            preAuth = Math.max(0, preAuth - 1);
            authed++;
            this.prevGoneAt = undefined;
          } else if (ev.type.startsWith('handshake:error')) {
            preAuth = Math.max(0, preAuth - 1);
            strangerDisconnectsDue++;
            // a flood of strangers must not become a flood of log lines
            this.rejectWarning.warn(
              `rank ${this.o.rank}: rejected a connection to ${(ev as { address?: string }).address ?? this.o.endpoints[this.o.rank]} that does not hold the job secret (${ev.type})`,
            );
          } else if (ev.type === 'disconnect') {
            if (strangerDisconnectsDue > 0) strangerDisconnectsDue--;
            else if (authed > 0) {
              authed--;
              if (authed === 0) this.prevGoneAt = Date.now();
            } else if (preAuth > 0) preAuth--;
          }
        }
      } catch {
        /* observer ends when the socket closes */
      }
    })();
  }

  private watchPush(): void {
    void (async () => {
      try {
        for await (const ev of this.push.events) {
          if (ev.type === 'handshake') this.nextGoneAt = undefined;
          else if (ev.type === 'disconnect') this.nextGoneAt = Date.now();
          else if (ev.type === 'handshake:error:auth' || ev.type === 'handshake:error:protocol') {
            this.fail(
              new CollectiveError(
                `rank ${this.o.rank}: the CURVE handshake with rank ${this.next} at ${this.o.endpoints[this.next]} failed (${ev.type}): is it running with another job's secret, or another security mechanism?`,
                this.next,
              ),
            );
          }
        }
      } catch {
        /* observer ends when the socket closes */
      }
    })();
  }

  private fail(err: CollectiveError): void {
    if (this.failure === undefined) this.failure = err;
  }

  get failed(): CollectiveError | undefined {
    return this.failure;
  }

  header(op: number, dtype: number, seq: number, chunk: number, bytes: number, flags = 0): Buffer {
    return encodeHeader(this.jobBytes, { op, dtype, from: this.o.rank, seq, chunk, bytes, flags });
  }

  /** One line for the worker log: the neighbours, transports and where allReduce payloads go. */
  describe(): string {
    const scheme = (e: string) => `${e.split('://')[0]} (${this.o.security ?? DEFAULT_SECURITY})`;
    return (
      `ring of ${this.o.worldSize} ranks, rank ${this.prev} -> ${this.o.rank} over ${scheme(this.o.endpoints[this.o.rank])}, ` +
      `-> rank ${this.next} over ${scheme(this.o.endpoints[this.next])}; allReduce payloads to rank ${this.next} ` +
      (this.shmOut ? `via /dev/shm (${this.shmOut.mapped ? 'mapped' : 'pwrite/pread'})` : 'in the messages')
    );
  }

  /**
   * Whether an allReduce that writes up to `bytes` into this rank's file of `parity` can use shared memory:
   * /dev/shm must have room for the new pages of every rank (a container's /dev/shm is often only 64 MB).
   * When it has not, that call's payloads go in the messages (the receiver follows each message's flag) and a
   * warning says so once.
   */
  sharedMemoryFor(parity: number, bytes: number): boolean {
    if (this.shmOut === undefined) return false;
    const extra = bytes - this.shmHave[parity];
    if (extra <= 0) return true;
    let free = Number.POSITIVE_INFINITY;
    try {
      const st = fs.statfsSync(SHM_ROOT);
      free = st.bavail * st.bsize;
    } catch {
      /* no figure: try, and let a failed write say why */
    }
    const mb = (x: number) => `${(x / 1e6).toFixed(1)} MB`;
    let why =
      free >= extra * this.o.worldSize
        ? undefined
        : `${SHM_ROOT} has ${mb(free)} free, too little for ${mb(extra)} more per rank`;
    if (why === undefined) {
      try {
        this.shmOut.reserve(parity, bytes);
        this.shmHave[parity] = bytes;
        return true;
      } catch (err) {
        why = `cannot reserve ${mb(bytes)} in ${SHM_ROOT}: ${(err as Error).message}`;
      }
    }
    if (!this.shmWarned) {
      this.shmWarned = true;
      this.o.log(
        'warn',
        `rank ${this.o.rank}: ${why}; allReduce payloads go through the socket (slower). ` +
          'Give the container a larger /dev/shm (docker --shm-size), or set HARDNET_SHM_DISABLE=1 to silence this',
      );
    }
    return false;
  }

  /** Put payload bytes at `position` of this rank's shared-memory file, before announcing them. */
  writeShared(parity: number, src: Uint8Array, position: number, ctx: OpContext): void {
    try {
      this.shmOut!.write(parity, src, position);
    } catch (err) {
      const e = new CollectiveError(
        `rank ${this.o.rank} in ${ctx.name} #${ctx.seq}: cannot write its payload to shared memory (${this.shmOut!.files[parity]}): ` +
          `${(err as Error).message}${(err as NodeJS.ErrnoException).code === 'ENOSPC' ? `; ${SHM_ROOT} is full (df ${SHM_ROOT}); set HARDNET_SHM_DISABLE=1 to use the sockets` : ''}`,
        this.o.rank,
        ctx.seq,
      );
      this.fail(e);
      throw e;
    }
  }

  /** This rank's own mapped file as floats at `position` (undefined when not mapped that far). */
  ownView(parity: number, position: number, floats: number): Float32Array | undefined {
    return this.shmOut?.view(parity, position, floats);
  }

  /** The predecessor's announced floats in place in its mapped file (undefined when not mapped). */
  sharedView(parity: number, position: number, floats: number, ctx: OpContext): Float32Array | undefined {
    return this.fromPredecessor(ctx, (r) => r.view(parity, position, floats));
  }

  /** Read the predecessor's announced payload bytes from its shared-memory file. */
  readShared(parity: number, dst: Uint8Array, position: number, ctx: OpContext): void {
    this.fromPredecessor(ctx, (r) => r.read(parity, dst, position));
  }

  private fromPredecessor<T>(ctx: OpContext, use: (r: ShmReader) => T): T {
    try {
      this.shmIn ??= ShmReader.open(this.o.jobId, this.prev);
      return use(this.shmIn);
    } catch (err) {
      throw this.protocol(
        `rank ${this.o.rank} in ${ctx.name} #${ctx.seq}: cannot read rank ${this.prev}'s payload from shared memory: ${(err as Error).message}`,
        ctx,
      );
    }
  }

  /** Check the deadline, warning and neighbours while waiting; throws when the collective cannot complete. */
  private checkWhileWaiting(ctx: OpContext, waitingOn: 'receive' | 'send'): void {
    if (this.failure) throw this.failure;
    const now = Date.now();
    const where = `${ctx.name} #${ctx.seq}`;
    if (this.prevGoneAt !== undefined && now - this.prevGoneAt > DRAIN_GRACE_MS && waitingOn === 'receive') {
      throw new CollectiveError(
        `rank ${this.o.rank}: rank ${this.prev} disconnected (died, was stopped or closed its group) during ${where}`,
        this.prev,
        ctx.seq,
      );
    }
    if (this.nextGoneAt !== undefined && now - this.nextGoneAt > DRAIN_GRACE_MS) {
      throw new CollectiveError(
        `rank ${this.o.rank}: rank ${this.next} disconnected (died, was stopped or closed its group) during ${where}`,
        this.next,
        ctx.seq,
      );
    }
    if (!ctx.warned && now - ctx.started >= this.o.warnAfterMs) {
      ctx.warned = true;
      const missing = ctx.missing();
      this.o.log(
        'warn',
        `rank ${this.o.rank}: ${where} has waited ${Math.round((now - ctx.started) / 1000)} s; still missing data from rank(s) ${missing.join(', ')} (waiting to ${waitingOn} via rank ${waitingOn === 'receive' ? this.prev : this.next}); the limit is ${Math.round(this.o.timeoutMs / 1000)} s`,
      );
    }
    if (now >= ctx.deadline) {
      const secs = Math.round((now - ctx.started) / 1000);
      // Every rank sends its first message of a collective without waiting, so a predecessor that has sent
      // nothing at all is the rank that never joined. One that did send is only stalled by someone upstream:
      // wait a little longer for the abort from the rank that saw the culprit, so every rank names the same one.
      if (ctx.received === 0 || waitingOn === 'send') {
        throw new CollectiveError(
          `rank ${this.o.rank}: ${where} timed out after ${secs} s: rank ${this.prev} sent nothing in this collective (never joined it, or is stuck before it)`,
          this.prev,
          ctx.seq,
        );
      }
      if (now >= ctx.deadline + ABORT_WAIT_MS) {
        throw new CollectiveError(
          `rank ${this.o.rank}: ${where} timed out after ${secs} s: rank ${this.prev} stopped sending part-way (still missing data from rank(s) ${ctx.missing().join(', ')})`,
          this.prev,
          ctx.seq,
        );
      }
    }
  }

  private setTimeout(which: 'receive' | 'send', ctx: OpContext): void {
    const ms = Math.max(1, Math.min(POLL_MS, ctx.deadline - Date.now()));
    if (which === 'receive') {
      if (ms !== this.recvTimeoutSet) {
        this.pull.receiveTimeout = ms;
        this.recvTimeoutSet = ms;
      }
    } else if (ms !== this.sendTimeoutSet) {
      this.push.sendTimeout = ms;
      this.sendTimeoutSet = ms;
    }
  }

  async send(frames: [Buffer, Buffer | Uint8Array], ctx: OpContext): Promise<void> {
    if (this.failure) throw this.failure;
    for (;;) {
      this.setTimeout('send', ctx);
      try {
        await this.push.send(frames);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw this.wrap(err, ctx, 'send to', this.next);
        this.checkWhileWaiting(ctx, 'send');
      }
    }
  }

  /** The next message from the predecessor: its decoded header (job id and sender checked) and its payload. */
  async recv(ctx: OpContext): Promise<[Header, Buffer]> {
    if (this.failure) throw this.failure;
    for (;;) {
      this.setTimeout('receive', ctx);
      let frames: Buffer[];
      try {
        frames = await this.pull.receive();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw this.wrap(err, ctx, 'receive from', this.prev);
        this.checkWhileWaiting(ctx, 'receive');
        continue;
      }
      ctx.received++;
      const h = frames.length === 2 ? decodeHeader(frames[0]) : undefined;
      const where = `rank ${this.o.rank} in ${ctx.name} #${ctx.seq}`;
      if (h === undefined)
        throw this.protocol(
          `${where}: received a message that is not a collective message (${frames.length} frames)`,
          ctx,
        );
      if (h.jobId !== this.o.jobId)
        throw this.protocol(`${where}: received ${describe(h)}, but this is job ${JSON.stringify(this.o.jobId)}`, ctx);
      if (h.op === Op.abort) {
        // Checked before it is acted on: only the predecessor sends to this rank, and an abort belongs to this
        // collective or the one before (a rank that sent all it had in collective k can fail while its successor
        // has already moved on to k + 1). Anything else is a replay or a forgery: ignored, it ends nothing.
        if (h.from === this.prev && (h.seq === ctx.seq || h.seq + 1 === ctx.seq) && frames[1].length === h.bytes)
          throw this.onAbort(h, frames[1], ctx);
        ctx.received--;
        this.ignoredWarning.warn(
          `rank ${this.o.rank} in ${ctx.name} #${ctx.seq}: ignored an abort claiming to be from rank ${h.from} for collective #${h.seq} ` +
            `(only rank ${this.prev} sends to this rank, and only an abort of #${ctx.seq - 1} or #${ctx.seq} counts)`,
        );
        continue;
      }
      if (h.from !== this.prev)
        throw this.protocol(`${where}: received ${describe(h)}, but only rank ${this.prev} sends to this rank`, ctx);
      const viaShm = payloadInSharedMemory(h);
      if (viaShm && !((h.op === Op.reduceScatter || h.op === Op.allGatherChunks) && h.dtype === WireDtype.float32)) {
        throw this.protocol(
          `${where}: ${describe(h)} claims a shared-memory payload, which only float32 allReduce messages have`,
          ctx,
        );
      }
      const inMessage = viaShm ? 0 : h.bytes; // shared-memory payloads come as an empty frame
      if (inMessage !== frames[1].length)
        throw this.protocol(`${where}: ${describe(h)} carries ${frames[1].length} payload bytes`, ctx);
      return [h, frames[1]];
    }
  }

  /** A mismatching header or payload: never summed, the collective fails. */
  expect(h: Header, op: number, dtype: number, seq: number, chunk: number, bytes: number, ctx: OpContext): void {
    if (h.op === op && h.dtype === dtype && h.seq === seq && h.chunk === chunk && h.bytes === bytes) return;
    const dt = (d: number) => Object.entries(WireDtype).find(([, v]) => v === d)?.[0] ?? `dtype ${d}`;
    throw this.protocol(
      `rank ${this.o.rank}: expected ${OP_NAMES[op]} #${seq} chunk ${chunk} (${bytes} bytes, ${dt(dtype)}) from rank ${this.prev}, ` +
        `received ${describe(h)} in ${dt(h.dtype)} (do all ranks run the same collectives with the same sizes and wire dtype?)`,
      ctx,
    );
  }

  private protocol(msg: string, ctx: OpContext): CollectiveError {
    const e = new CollectiveError(msg, this.prev, ctx.seq);
    this.fail(e);
    return e;
  }

  private wrap(err: unknown, ctx: OpContext, verb: string, peer: number): CollectiveError {
    if (err instanceof CollectiveError) return err;
    const e = new CollectiveError(
      `rank ${this.o.rank}: cannot ${verb} rank ${peer} in ${ctx.name} #${ctx.seq}: ${(err as Error).message}`,
      peer,
      ctx.seq,
    );
    this.fail(e);
    return e;
  }

  private onAbort(h: Header, payload: Buffer, ctx: OpContext): CollectiveError {
    let info: { culprit?: number; origin?: number; reason?: string } = {};
    try {
      info = JSON.parse(payload.toString('utf8'));
    } catch {
      /* keep the defaults */
    }
    const culprit = typeof info.culprit === 'number' ? info.culprit : h.from;
    const origin = typeof info.origin === 'number' ? info.origin : h.from;
    const e = new CollectiveError(
      `rank ${this.o.rank}: ${ctx.name} #${ctx.seq} aborted: ${info.reason ?? 'a peer failed'} (reported by rank ${origin})`,
      culprit,
      ctx.seq,
    );
    this.fail(e);
    if (this.next !== origin && this.next !== culprit) this.sendAbortRaw(payload, h.seq);
    return e;
  }

  /** Tell the rest of the ring (best effort, never waits): the successor forwards it until it has gone round. */
  abort(err: CollectiveError, seq: number): void {
    this.fail(err);
    if (err.culprit === this.next) return;
    // the reason is cut so that the message stays under every receiver's maximum message size
    const payload = Buffer.from(
      JSON.stringify({ culprit: err.culprit, origin: this.o.rank, reason: err.message.slice(0, 4000) }),
      'utf8',
    );
    this.sendAbortRaw(payload, seq);
  }

  private sendAbortRaw(payload: Buffer, seq: number): void {
    if (this.closed) return;
    try {
      this.push.sendTimeout = 0;
      this.sendTimeoutSet = 0;
      this.push.send([this.header(Op.abort, WireDtype.bytes, seq, 0, payload.length), payload]).catch(() => {
        /* successor gone too */
      });
    } catch {
      /* a send already in flight: the successor will time out on its own */
    }
  }

  /**
   * Close without blocking. A clean close lingers briefly so the last messages still reach the successor
   * (they are queued, not yet written, when send() resolves); after a failure nothing lingers.
   */
  close(lingerMs: number): void {
    if (this.closed) return;
    this.closed = true;
    this.push.linger = lingerMs;
    this.push.close();
    this.pull.close();
    this.shmOut?.close();
    this.shmIn?.close();
    if (this.ownIpcPath !== undefined) removeIpcPath(this.ownIpcPath, this.createdIpcDir);
    unregisterZapDomain(this.zapDomain);
    this.rejectWarning.flush(
      (n) =>
        `rank ${this.o.rank}: rejected ${n} more connection(s) that do not hold the job secret since the last warning`,
    );
    this.ignoredWarning.flush(
      (n) =>
        `rank ${this.o.rank}: ignored ${n} more abort(s) that were not from rank ${this.prev} in the current collective`,
    );
  }
}
