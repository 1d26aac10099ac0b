/**
 * What an allReduce message carries and where its bytes are, for the ring loops in process_group.ts. Each part
 * owns its own state:
 * - a wire codec: how the values travel (float32 as they are; float16 rounded, combined in the received half
 *   buffer) and how a received partial is combined with ours in the message itself;
 * - the payload paths: where this rank's payloads go (Outbox: in the message, or into this rank's file on
 *   /dev/shm at running offsets) and where the predecessor's are (Inbox: in its message, or in its file; the
 *   header's flag says which, message by message, because the predecessor may be on another host).
 */
import { addHalfInto, decodeHalf, encodeHalf } from './float16.js';
import type { OpContext, RingLink } from './link.js';
import { addChunk, addInto, divideBy, type BlockReader, type BlockWriter } from './sum.js';
import { CONTROL_SHIFT, FLAG_SHARED_MEMORY, WireDtype, payloadInSharedMemory, type Header } from './wire.js';

/** The bytes of a float array (received payloads are copied in byte-wise: zeromq's buffers may be unaligned). */
export function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function u16View(b: Buffer): Uint16Array {
  if (b.byteOffset % 2 !== 0) return new Uint16Array(new Uint8Array(b).buffer);
  return new Uint16Array(b.buffer, b.byteOffset, b.length >>> 1);
}

export interface WireCodec {
  readonly dtype: number;
  readonly elemBytes: number;
  /** whether payloads may go through shared memory (which holds float32 values only) */
  readonly sharedMemory: boolean;
  /** our own chunk as it goes out in reduce-scatter step 0 (float32: a view of `mine`, no copy) */
  encode(mine: Float32Array): Uint8Array;
  /**
   * Add `mine` into the received partial in the received buffer and return the bytes to forward. `last`: the
   * result is final, divided by `divisor`, and `mine` keeps exactly the values the other ranks will receive.
   */
  reduceInMessage(payload: Buffer, mine: Float32Array, divisor: number, last: boolean): Uint8Array;
  /** a final chunk received in the all-gather, into `mine` */
  decodeInto(payload: Buffer, mine: Float32Array): void;
}

export const FLOAT32_WIRE: WireCodec = {
  dtype: WireDtype.float32,
  elemBytes: 4,
  sharedMemory: true,
  encode: bytesOf,
  reduceInMessage(payload, mine, divisor, last) {
    addChunk(payload, mine, divisor, last ? mine : undefined);
    return payload;
  },
  decodeInto(payload, mine) {
    bytesOf(mine).set(payload.subarray(0, mine.byteLength));
  },
};

export class Float16Wire implements WireCodec {
  readonly dtype = WireDtype.float16;
  readonly elemBytes = 2;
  readonly sharedMemory = false;
  private scratchBuf = new Float32Array(0);

  encode(mine: Float32Array): Uint8Array {
    const h = new Uint16Array(mine.length);
    encodeHalf(mine, h);
    return new Uint8Array(h.buffer);
  }

  reduceInMessage(payload: Buffer, mine: Float32Array, divisor: number, last: boolean): Uint8Array {
    const wire = u16View(payload);
    if (last && divisor !== 1) {
      // finish in float32 and round to half once
      const acc = this.scratch(wire.length);
      decodeHalf(wire, acc);
      addInto(acc, mine);
      divideBy(acc, divisor);
      encodeHalf(acc, wire);
    } else addHalfInto(wire, mine);
    if (last) decodeHalf(wire, mine);
    return new Uint8Array(wire.buffer, wire.byteOffset, wire.byteLength);
  }

  decodeInto(payload: Buffer, mine: Float32Array): void {
    decodeHalf(u16View(payload), mine);
  }

  private scratch(len: number): Float32Array {
    if (this.scratchBuf.length < len) this.scratchBuf = new Float32Array(len);
    return this.scratchBuf.subarray(0, len);
  }
}

const EMPTY = new Uint8Array(0);

/** Where this rank's payloads of one allReduce go: in the message, or into our shared-memory file. */
export class Outbox {
  private position = 0;
  /** the control bits every message from here on carries in its header (wire.ts) */
  control = 0;

  constructor(
    private readonly link: RingLink,
    private readonly ctx: OpContext,
    /** the wire dtype code the headers announce */
    private readonly dtype: number,
    /** true: payloads go into our file of this call's parity and the message carries only the header */
    readonly shared: boolean,
    private readonly parity: number,
    private readonly sendFrames: (frames: [Buffer, Uint8Array], sharedBytes: number) => Promise<void>,
  ) {}

  /**
   * Announce one payload; in shared memory it is first written at the running offset unless the sum already put it
   * there. An empty payload (a segment with no elements, sent for its control bits) always goes in the message.
   */
  send(op: number, index: number, bytes: Uint8Array, written = false): Promise<void> {
    const { link, ctx } = this;
    const control = this.control << CONTROL_SHIFT;
    if (!this.shared || bytes.length === 0)
      return this.sendFrames([link.header(op, this.dtype, ctx.seq, index, bytes.length, control), bytes], 0);
    if (!written) link.writeShared(this.parity, bytes, this.position, ctx);
    this.position += bytes.length;
    return this.sendFrames(
      [link.header(op, this.dtype, ctx.seq, index, bytes.length, FLAG_SHARED_MEMORY | control), EMPTY],
      bytes.length,
    );
  }

  /** our file's region for the next payload, mapped, for a sum that writes there in place (undefined: not mapped) */
  nextView(floats: number): Float32Array | undefined {
    return this.shared ? this.link.ownView(this.parity, this.position, floats) : undefined;
  }

  /** writes the next payload into our file (shared only) */
  nextWriter(): BlockWriter {
    const at = this.position;
    return (src, o) => this.link.writeShared(this.parity, src, at + o, this.ctx);
  }
}

/** Where the predecessor's payloads of one allReduce are: in its messages, or in its shared-memory file. */
export class Inbox {
  private position = 0;

  constructor(
    private readonly link: RingLink,
    private readonly ctx: OpContext,
    private readonly parity: number,
  ) {}

  /** the bytes announced by `h`: a reader of the message or of the predecessor's file (taken: the offset moves on) */
  reader(h: Header, payload: Buffer): BlockReader {
    if (!payloadInSharedMemory(h)) return (dst, o) => dst.set(payload.subarray(o, o + dst.length));
    const at = this.position;
    this.position += h.bytes;
    return (dst, o) => this.link.readShared(this.parity, dst, at + o, this.ctx);
  }

  /**
   * The predecessor's file region announced by `h`, mapped, and taken (the offset moves on) when there is one;
   * undefined, and nothing taken, when the payload is in the message or the file is not mapped. `ready` says
   * whether the caller can use a view now (for a sum in place its own file must be mapped too).
   */
  takeView(h: Header, floats: number, ready: boolean): Float32Array | undefined {
    if (!ready || !payloadInSharedMemory(h)) return undefined;
    const view = this.link.sharedView(this.parity, this.position, floats, this.ctx);
    if (view) this.position += h.bytes;
    return view;
  }
}
