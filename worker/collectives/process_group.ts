/**
 * Collectives over the ring link: allReduce as a chunked, pipelined ring reduce-scatter + all-gather (each half
 * also on its own, reduceScatter and allGatherInPlace, for a sharded optimizer); broadcast as a chunk pipeline
 * along the ring; allGather of small values and barrier as N-1 ring steps. allReduce and reduceScatter carry a
 * control word in their headers (a stop request), OR-ed over the ranks.
 *
 * allReduce data flow (why it is byte-identical on every rank): segment j of the buffer is summed in one fixed
 * order, starting at rank j and going round the ring; the rank that adds last (j-1) owns the final bytes and
 * everyone else copies them during the all-gather.
 *
 * Two ways for the bytes, chosen per message by the sender (a header flag tells the receiver):
 * - Ranks on one host (ipc://): the payload is put in the sender's file on /dev/shm, mapped by both processes
 *   (shm.ts); the ZeroMQ message carries only the header. The sum reads the predecessor's partial in its mapping
 *   and writes the result straight into ours (and, for the owner, into the caller's array): one memcpy per byte,
 *   where the sockets cost two kernel copies per byte in zeromq's I/O thread and a freshly malloc'd buffer per
 *   message (docs/bench_allreduce.md has the figures).
 * - Otherwise (tcp://, or no usable /dev/shm): the payload travels in the message. Every partial sum is computed in
 *   the RECEIVED buffer (zeromq hands it over without a copy) and that same buffer is forwarded, so the caller's
 *   array is only read during reduce-scatter and written once per element at the end. The first sends are
 *   zero-copy views of the caller's array; that is safe because the same region is only overwritten after its
 *   final value has come back round the ring, which implies the successor received it. Sums run on WebAssembly
 *   SIMD (sum.ts), received buffers reuse their pages (shared/malloc_tunables.ts).
 * Either way chunks (default 4 MiB) are sent as soon as they are ready, so sending chunk i+1 overlaps summing
 * chunk i on both sides. Which path a payload takes, and how its values are encoded (float32, float16), are the
 * Outbox/Inbox and the wire codec of ring_payloads.ts; the loops below are the same for all of them.
 */
import type { WorkerEnv } from '../../shared/env.js';
import { CollectiveError, type RingLink, SMALL_PAYLOAD_BYTES, type LogFn, type OpContext } from './link.js';
import { bytesOf, FLOAT32_WIRE, Float16Wire, Inbox, Outbox, type WireCodec } from './ring_payloads.js';
import { addBlocks } from './sum.js';
import { CONTROL_MAX, controlOf, Op, payloadInSharedMemory, WireDtype, type Header } from './wire.js';
import { nativeShm, type NativeShm } from './shm.js';

export type WireDtypeName = 'float32' | 'float16';

export interface ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  /** one line for the worker log: how this rank talks to the others */
  readonly description: string;
  /**
   * In place; every rank must pass the same length. `control`: bits (0..255) this rank contributes to the call's
   * control word, carried in the message headers beside the values; resolves to the OR of every rank's bits, the
   * same on every rank (a stop request that all ranks act on after the same call), also for an empty buffer.
   */
  allReduce(buf: Float32Array, op: 'sum' | 'mean', control?: number): Promise<number>;
  /**
   * The first half of allReduce: afterwards only this rank's owned segment (ownedSegment) of `buf` holds the
   * reduced values, the rest is partial sums. Same `control` word as allReduce.
   */
  reduceScatter(buf: Float32Array, op: 'sum' | 'mean', control?: number): Promise<number>;
  /**
   * The second half of allReduce, in place: every rank's owned segment of `buf` goes to every other rank, so all
   * end with the same bytes (always float32 on the wire, whatever the wire dtype).
   */
  allGatherInPlace(buf: Float32Array): Promise<void>;
  /** [start, end) of the segment of an n-element buffer whose reduced values this rank holds after reduceScatter */
  ownedSegment(n: number): [number, number];
  /** in place: every rank ends with root's bytes */
  broadcast(buf: Float32Array, root?: number): Promise<void>;
  barrier(): Promise<void>;
  /** small values (metrics); result[r] is rank r's array */
  allGather(values: number[]): Promise<number[][]>;
  close(): Promise<void>;
  /** payload bytes this rank has sent (headers excluded), for checks and benchmarks */
  readonly bytesSent: { allReduce: number; other: number };
}

/**
 * Where an allReduce's time went on this rank (milliseconds, summed over calls), for bench:allreduce --profile:
 * waiting for the predecessor's next message, summing, copying final values into the caller's array, handing
 * messages to zeromq (queueing, or waiting for room under the high-water mark).
 */
export interface RingTiming {
  calls: number;
  recvWaitMs: number;
  sumMs: number;
  copyMs: number;
  sendMs: number;
  messages: number;
}

export interface GroupTuning {
  timeoutMs: number;
  warnAfterMs: number;
  wireDtype: WireDtypeName;
  chunkBytes: number;
  log: LogFn;
}

/** worldSize 1: every collective is the identity and no socket is opened. */
export class SoloGroup implements ProcessGroup {
  readonly rank = 0;
  readonly worldSize = 1;
  readonly description = 'a single worker: no sockets, every collective is the identity';
  readonly bytesSent = { allReduce: 0, other: 0 };
  async allReduce(_buf: Float32Array, _op: 'sum' | 'mean', control = 0): Promise<number> {
    checkControl(control);
    return control; // sum or mean of one rank is the buffer itself, and so is its control word
  }
  async reduceScatter(_buf: Float32Array, _op: 'sum' | 'mean', control = 0): Promise<number> {
    checkControl(control);
    return control;
  }
  async allGatherInPlace(): Promise<void> {}
  ownedSegment(n: number): [number, number] {
    return [0, n];
  }
  async broadcast(_buf: Float32Array, root = 0): Promise<void> {
    if (root !== 0) throw new RangeError(`broadcast root ${root} is not a rank of a group of size 1`);
  }
  async barrier(): Promise<void> {}
  async allGather(values: number[]): Promise<number[][]> {
    return [values.slice()];
  }
  async close(): Promise<void> {}
}

const EMPTY_PAYLOAD = new Uint8Array(0);

/** A control word of allReduce: the header has 8 bits for it (wire.ts). */
function checkControl(control: number): void {
  if (!Number.isInteger(control) || control < 0 || control > CONTROL_MAX)
    throw new RangeError(`allReduce control must be an integer 0..${CONTROL_MAX}, not ${control}`);
}

/** The payload paths of one allReduce call (ring_payloads.ts). */
interface RingIo {
  outbox: Outbox;
  inbox: Inbox;
  /** the native mapping module when our payloads go through shared memory (sums in place), else null */
  native: NativeShm | null;
}

export class RingGroup implements ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  private seq = 0;
  /** allReduce calls so far: their parity picks the shared-memory region (shm.ts) */
  private allReduces = 0;
  private closed = false;
  private busy = false;
  readonly bytesSent = { allReduce: 0, other: 0 };
  readonly timing: RingTiming = { calls: 0, recvWaitMs: 0, sumMs: 0, copyMs: 0, sendMs: 0, messages: 0 };

  private readonly codec: WireCodec;

  constructor(
    private readonly link: RingLink,
    env: WorkerEnv,
    private readonly t: GroupTuning,
  ) {
    this.rank = env.rank;
    this.worldSize = env.worldSize;
    this.codec = t.wireDtype === 'float16' ? new Float16Wire() : FLOAT32_WIRE;
  }

  get description(): string {
    return this.link.describe();
  }

  private ctx(name: string, missing: () => number[]): OpContext {
    const started = Date.now();
    return {
      name,
      seq: ++this.seq,
      started,
      deadline: started + this.t.timeoutMs,
      warned: false,
      received: 0,
      missing,
    };
  }

  /** Run one collective; a failure poisons the group and is passed round the ring. */
  private async run<T>(ctx: OpContext, body: () => Promise<T>): Promise<T> {
    if (this.closed) throw new CollectiveError(`rank ${this.rank}: ${ctx.name} #${ctx.seq} on a closed process group`);
    if (this.busy)
      throw new CollectiveError(
        `rank ${this.rank}: ${ctx.name} #${ctx.seq} started while another collective is still running (await each collective)`,
      );
    const failed = this.link.failed;
    if (failed) throw failed;
    this.busy = true;
    try {
      return await body();
    } catch (err) {
      const e =
        err instanceof CollectiveError
          ? err
          : new CollectiveError(
              `rank ${this.rank}: ${ctx.name} #${ctx.seq} failed: ${(err as Error).message}`,
              undefined,
              ctx.seq,
            );
      this.link.abort(e, ctx.seq);
      throw e;
    } finally {
      this.busy = false;
    }
  }

  private async send(kind: 'allReduce' | 'other', frames: [Buffer, Uint8Array], ctx: OpContext): Promise<void> {
    this.bytesSent[kind] += frames[1].byteLength;
    const t0 = performance.now();
    await this.link.send(frames, ctx);
    if (kind === 'allReduce') this.timing.sendMs += performance.now() - t0;
  }
  private async recvT(ctx: OpContext) {
    const t0 = performance.now();
    const r = await this.link.recv(ctx);
    this.timing.recvWaitMs += performance.now() - t0;
    this.timing.messages++;
    return r;
  }

  private segment(n: number, j: number): [number, number] {
    const N = this.worldSize;
    return [Math.floor((j * n) / N), Math.floor(((j + 1) * n) / N)];
  }

  async allReduce(buf: Float32Array, op: 'sum' | 'mean', control = 0): Promise<number> {
    return this.ring('allReduce', buf, { op, control, reduce: true, gather: true, codec: this.codec });
  }

  async reduceScatter(buf: Float32Array, op: 'sum' | 'mean', control = 0): Promise<number> {
    return this.ring('reduceScatter', buf, { op, control, reduce: true, gather: false, codec: this.codec });
  }

  async allGatherInPlace(buf: Float32Array): Promise<void> {
    // float32 whatever the wire dtype: what is gathered is final (weights), and every rank must end with the
    // owner's bytes, which a rounding on the way would not give the owner itself
    await this.ring('allGather', buf, { op: 'sum', control: 0, reduce: false, gather: true, codec: FLOAT32_WIRE });
  }

  ownedSegment(n: number): [number, number] {
    return this.segment(n, (this.rank + 1) % this.worldSize);
  }

  /**
   * The two ring loops over `buf`: the reduce-scatter (segment j summed from rank j round to rank j-1, which
   * owns its final values), the all-gather (each final segment passed on from its owner), or both, pipelined:
   * allReduce's last reduce-scatter step sends its final chunks at once as the all-gather's first messages.
   */
  private async ring(
    name: string,
    buf: Float32Array,
    phases: { op: 'sum' | 'mean'; control: number; reduce: boolean; gather: boolean; codec: WireCodec },
  ): Promise<number> {
    const { op, control, reduce, gather, codec } = phases;
    if (op !== 'sum' && op !== 'mean')
      throw new RangeError(`${name} op must be 'sum' or 'mean', not ${JSON.stringify(op)}`);
    checkControl(control);
    const N = this.worldSize;
    const r = this.rank;
    const n = buf.length;
    const chunkElems = Math.max(1, Math.floor(this.t.chunkBytes / 4));
    let heardFrom = 0; // ring steps completed: ranks r-1 .. r-heardFrom have contributed
    const ctx = this.ctx(name, () =>
      Array.from({ length: N - 1 - Math.min(heardFrom, N - 1) }, (_, k) => (r + N - 1 - heardFrom - k) % N),
    );
    this.timing.calls++;
    return this.run(ctx, async () => {
      // float32 payloads to a successor on this host go through shared memory (shm.ts), at running offsets in
      // the file of this call's parity. An empty call puts nothing there (its messages carry only the control
      // bits): it takes no turn of the parity files; nor does a call refused as busy or closed (run() refuses
      // before this).
      let parity = 0;
      let shared = false;
      if (n > 0) {
        parity = this.allReduces++ % 2;
        // a rank sends N-1 segments in each phase, none longer than ceil(n/N)
        const phaseCount = (reduce ? 1 : 0) + (gather ? 1 : 0);
        shared = codec.sharedMemory && this.link.sharedMemoryFor(parity, phaseCount * (N - 1) * Math.ceil(n / N) * 4);
      }
      const io: RingIo = {
        outbox: new Outbox(this.link, ctx, codec.dtype, shared, parity, (frames, sharedBytes) => {
          this.bytesSent.allReduce += sharedBytes;
          return this.send('allReduce', frames, ctx);
        }),
        inbox: new Inbox(this.link, ctx, parity),
        native: shared ? nativeShm() : null,
      };
      const mod = (x: number) => ((x % N) + N) % N;
      // an empty segment (fewer elements than ranks) still sends one empty chunk: its header carries the control
      // bits, so that every rank hears from every other in the reduce-scatter whatever the buffer's length
      const chunks = (segment: number) => {
        const [s0, s1] = this.segment(n, segment);
        const out: Float32Array[] = [buf.subarray(s0, Math.min(s1, s0 + chunkElems))];
        for (let c = s0 + chunkElems; c < s1; c += chunkElems) out.push(buf.subarray(c, Math.min(s1, c + chunkElems)));
        return out;
      };
      // the control word: each message carries the OR of the bits of the ranks it passed, so after the N-1 steps
      // of the reduce-scatter every rank holds all of them (the all-gather's messages carry them too)
      io.outbox.control = control;
      const receive = async (op: number, index: number, mine: Float32Array) => {
        const [h, payload] = await this.recvT(ctx);
        this.link.expect(h, op, codec.dtype, ctx.seq, index, mine.length * codec.elemBytes, ctx);
        io.outbox.control |= controlOf(h);
        if (!codec.sharedMemory && payloadInSharedMemory(h)) {
          // float16 payloads always travel in the message: a flag saying otherwise is no peer of this job's
          throw new CollectiveError(
            `rank ${r}: ${name} #${ctx.seq}: rank ${this.link.prev} announced a float16 payload in shared memory`,
            this.link.prev,
            ctx.seq,
          );
        }
        return [h, payload] as const;
      };

      // reduce-scatter: step 0 sends our own segment r as it is; steps 1..N-1 add our part to the predecessor's
      // partial sum and pass it on; the last step owns the final values of its segment (and, in an allReduce,
      // starts the all-gather with them)
      let agTx = 0; // all-gather messages sent: our owned segment first, then forwards
      if (reduce) {
        let rsTx = 0;
        let rsRx = 0;
        // (a float32 view of the caller's array goes out without a copy when the all-gather follows: our segment
        // is overwritten only once its final value came back round the ring, so the successor has read it; a
        // reduce-scatter alone returns before that, and the caller may change its array at once)
        const own = (mine: Float32Array) =>
          gather || io.outbox.shared || codec !== FLOAT32_WIRE ? codec.encode(mine) : Buffer.from(bytesOf(mine));
        for (const mine of chunks(r)) await io.outbox.send(Op.reduceScatter, rsTx++, own(mine));
        for (let step = 1; step < N; step++) {
          const last = step === N - 1;
          const divisor = last && op === 'mean' ? N : 1;
          for (const mine of chunks(mod(r - step))) {
            const [h, payload] = await receive(Op.reduceScatter, rsRx++, mine);
            const ts = performance.now();
            const [bytes, written] = this.combine(io, h, payload, mine, divisor, last);
            this.timing.sumMs += performance.now() - ts;
            if (!last) await io.outbox.send(Op.reduceScatter, rsTx++, bytes, written);
            else if (gather) await io.outbox.send(Op.allGatherChunks, agTx++, bytes, written);
          }
          heardFrom = step;
        }
        heardFrom = 0;
      } else {
        // an all-gather alone starts from our owned segment as the caller holds it: a copy when it goes in the
        // message, since the caller may change its array as soon as the call returns (zeromq may not have sent it)
        for (const mine of chunks(mod(r + 1)))
          await io.outbox.send(
            Op.allGatherChunks,
            agTx++,
            io.outbox.shared ? bytesOf(mine) : Buffer.from(bytesOf(mine)),
          );
      }
      if (!gather) return io.outbox.control;

      // all-gather: copy each final segment, pass it on until it reaches the rank that owns it
      let agRx = 0;
      for (let step = 1; step < N; step++) {
        for (const mine of chunks(mod(r + 1 - step))) {
          const [h, payload] = await receive(Op.allGatherChunks, agRx++, mine);
          const tc = performance.now();
          if (codec.sharedMemory && payloadInSharedMemory(h)) io.inbox.reader(h, payload)(bytesOf(mine), 0);
          else codec.decodeInto(payload, mine);
          this.timing.copyMs += performance.now() - tc;
          if (step < N - 1) {
            // forward what was received; a copy when it now lives only in the caller's array, which the caller
            // may change as soon as the call returns (zeromq may not have sent it by then)
            const inMessage = payload.length === mine.length * codec.elemBytes;
            await io.outbox.send(
              Op.allGatherChunks,
              agTx++,
              io.outbox.shared ? bytesOf(mine) : inMessage ? payload : Buffer.from(bytesOf(mine)),
            );
          }
        }
        heardFrom = step;
      }
      return io.outbox.control;
    });
  }

  /**
   * One reduce-scatter chunk: the predecessor's partial sum plus ours. Returns the bytes to pass on and whether
   * they are already in our shared-memory file. With `last` the result is final (divided by `divisor`) and is
   * also kept in `mine`.
   */
  private combine(
    io: RingIo,
    h: Header,
    payload: Buffer,
    mine: Float32Array,
    divisor: number,
    last: boolean,
  ): [Uint8Array, boolean] {
    const { outbox, inbox, native } = io;
    if (mine.length === 0) return [EMPTY_PAYLOAD, false]; // an empty segment's chunk: only its header matters
    if (!this.codec.sharedMemory || (!outbox.shared && !payloadInSharedMemory(h))) {
      // summed in the received buffer (any alignment), which is then forwarded
      return [this.codec.reduceInMessage(payload, mine, divisor, last), false];
    }
    // with both files mapped, the sum reads the partial in the predecessor's file and writes into ours in place
    const dst = native ? outbox.nextView(mine.length) : undefined;
    const src = inbox.takeView(h, mine.length, dst !== undefined);
    if (native && src && dst) {
      native.add(src, mine, divisor, dst, last ? mine : undefined);
      return [bytesOf(mine), true];
    }
    // the partial comes from the message or the predecessor's file, the result goes to our file or, when the
    // successor is not on this host, into a new message
    const out = outbox.shared ? undefined : Buffer.allocUnsafe(mine.length * 4);
    addBlocks(
      inbox.reader(h, payload),
      mine,
      divisor,
      out ? (src2, o) => out.set(src2, o) : outbox.nextWriter(),
      last ? mine : undefined,
    );
    return [out ?? bytesOf(mine), !out];
  }

  async broadcast(buf: Float32Array, root = 0): Promise<void> {
    const N = this.worldSize;
    if (!Number.isInteger(root) || root < 0 || root >= N)
      throw new RangeError(`broadcast root ${root} is not a rank of a group of size ${N}`);
    const ctx = this.ctx('broadcast', () => [root]);
    const chunkElems = Math.max(1, Math.floor(this.t.chunkBytes / 4));
    const forward = this.link.next !== root;
    await this.run(ctx, async () => {
      let k = 0;
      for (let c = 0; c < buf.length; c += chunkElems, k++) {
        const part = buf.subarray(c, Math.min(buf.length, c + chunkElems));
        if (this.rank === root) {
          // a copy: the root returns as soon as its sends are queued and may then change its weights
          const payload = Buffer.from(new Uint8Array(part.buffer, part.byteOffset, part.byteLength));
          await this.send(
            'other',
            [this.link.header(Op.broadcast, WireDtype.float32, ctx.seq, k, payload.length), payload],
            ctx,
          );
        } else {
          const [h, payload] = await this.link.recv(ctx);
          this.link.expect(h, Op.broadcast, WireDtype.float32, ctx.seq, k, part.byteLength, ctx);
          bytesOf(part).set(payload);
          if (forward)
            await this.send(
              'other',
              [this.link.header(Op.broadcast, WireDtype.float32, ctx.seq, k, payload.length), payload],
              ctx,
            );
        }
      }
    });
  }

  async allGather(values: number[]): Promise<number[][]> {
    // every receiver drops frames larger than its maximum message size (link.ts): say so here instead
    if (values.length * 8 > SMALL_PAYLOAD_BYTES)
      throw new RangeError(
        `allGather of ${values.length} values: at most ${SMALL_PAYLOAD_BYTES / 8} (it is for metrics; use allReduce or broadcast for arrays)`,
      );
    return this.ringGather('allGather', Op.allGather, values);
  }

  async barrier(): Promise<void> {
    await this.ringGather('barrier', Op.barrier, []);
  }

  private async ringGather(name: string, op: number, values: number[]): Promise<number[][]> {
    const N = this.worldSize;
    const r = this.rank;
    const out: number[][] = new Array(N);
    out[r] = values.slice();
    const ctx = this.ctx(name, () => Array.from({ length: N }, (_, k) => k).filter((k) => out[k] === undefined));
    await this.run(ctx, async () => {
      // chunk field = the rank whose values the message carries; they travel N-1 hops
      let carry: Buffer = Buffer.from(new Float64Array(values).buffer);
      let origin = r;
      for (let step = 1; step < N; step++) {
        await this.send('other', [this.link.header(op, WireDtype.bytes, ctx.seq, origin, carry.length), carry], ctx);
        const [h, payload] = await this.link.recv(ctx);
        const expectOrigin = (r - step + N) % N;
        this.link.expect(h, op, WireDtype.bytes, ctx.seq, expectOrigin, payload.length, ctx);
        if (payload.length % 8 !== 0)
          throw new CollectiveError(
            `rank ${r}: ${name} #${ctx.seq}: rank ${expectOrigin}'s values are ${payload.length} bytes, not a whole number of float64`,
            this.link.prev,
            ctx.seq,
          );
        out[expectOrigin] = Array.from(
          new Float64Array(payload.buffer.slice(payload.byteOffset, payload.byteOffset + payload.length)),
        );
        carry = payload;
        origin = expectOrigin;
      }
    });
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // after a failure nothing is worth delivering: close at once so a failing worker exits promptly
    this.link.close(this.link.failed ? 0 : 2000);
  }
}
