/**
 * The header frame that precedes every payload frame: who sent it, for which job and collective, which chunk,
 * how many bytes. The receiver knows exactly which message must come next from its ring predecessor, so any
 * difference is a protocol error (never silently summed).
 *
 * Layout (little endian, 24 bytes + job id): magic u32 | op u8 | dtype u8 | flags u16 | from u32 | seq u32 |
 * chunk u32 | bytes u32 | job id (utf8)
 */
import { CollectiveError } from '../../shared/errors.js';
export const MAGIC = 0x43_4e_44_48; // "HDNC"
export const FIXED_HEADER_BYTES = 24;

export const Op = {
  reduceScatter: 1,
  allGatherChunks: 2,
  broadcast: 3,
  allGather: 4,
  barrier: 5,
  /** a rank that failed tells the rest of the ring who is to blame; `chunk` carries the blamed rank */
  abort: 0xff,
} as const;
export type OpCode = (typeof Op)[keyof typeof Op];

/** flags: the payload is not in the message but in the sender's shared-memory file (shm.ts); the frame is empty */
export const FLAG_SHARED_MEMORY = 1;

/**
 * flags bits 8-15: the control word of an allReduce (ProcessGroup.allReduce's `control`), the OR of the bits of
 * the ranks the message has passed; the reduce-scatter brings every rank's bits to every rank.
 */
export const CONTROL_SHIFT = 8;
export const CONTROL_MAX = 0xff;

/** The control bits a message carries. */
export function controlOf(h: Pick<Header, 'flags'>): number {
  return ((h.flags ?? 0) >>> CONTROL_SHIFT) & CONTROL_MAX;
}

/** Whether a message's payload is in the sender's shared-memory file rather than in the message. */
export function payloadInSharedMemory(h: Pick<Header, 'flags'>): boolean {
  return ((h.flags ?? 0) & FLAG_SHARED_MEMORY) !== 0;
}

export const WireDtype = { float32: 0, float16: 1, bytes: 2 } as const;
export type WireDtypeCode = (typeof WireDtype)[keyof typeof WireDtype];

export const OP_NAMES: Record<number, string> = {
  1: 'allReduce (reduce-scatter)',
  2: 'allReduce (all-gather)',
  3: 'broadcast',
  4: 'allGather',
  5: 'barrier',
  255: 'abort',
};

export interface Header {
  op: number;
  dtype: number;
  from: number;
  seq: number;
  chunk: number;
  bytes: number;
  /** FLAG_* bits; 0 when absent */
  flags?: number;
  jobId: string;
}

/** Encode a header; `jobBytes` is the job id already encoded once per group. */
export function encodeHeader(jobBytes: Buffer, h: Omit<Header, 'jobId'>): Buffer {
  const b = Buffer.allocUnsafe(FIXED_HEADER_BYTES + jobBytes.length);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt8(h.op, 4);
  b.writeUInt8(h.dtype, 5);
  b.writeUInt16LE(h.flags ?? 0, 6);
  b.writeUInt32LE(h.from, 8);
  b.writeUInt32LE(h.seq, 12);
  b.writeUInt32LE(h.chunk, 16);
  b.writeUInt32LE(h.bytes, 20);
  jobBytes.copy(b, FIXED_HEADER_BYTES);
  return b;
}

export class ProtocolError extends CollectiveError {}

/** Decode a header frame; returns undefined when it is not one of ours at all. */
export function decodeHeader(b: Buffer): Header | undefined {
  if (b.length < FIXED_HEADER_BYTES || b.readUInt32LE(0) !== MAGIC) return undefined;
  return {
    op: b.readUInt8(4),
    dtype: b.readUInt8(5),
    flags: b.readUInt16LE(6),
    from: b.readUInt32LE(8),
    seq: b.readUInt32LE(12),
    chunk: b.readUInt32LE(16),
    bytes: b.readUInt32LE(20),
    jobId: b.subarray(FIXED_HEADER_BYTES).toString('utf8'),
  };
}

export function describe(h: Pick<Header, 'op' | 'seq' | 'chunk' | 'bytes' | 'from'> & { jobId?: string }): string {
  const job = h.jobId === undefined ? '' : ` of job ${JSON.stringify(h.jobId)}`;
  return `${OP_NAMES[h.op] ?? `op ${h.op}`} #${h.seq} chunk ${h.chunk} (${h.bytes} bytes) from rank ${h.from}${job}`;
}
