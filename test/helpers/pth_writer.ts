/**
 * Writes small torch.save-format files (zip layout, protocol-2 pickle) in the test itself, so that hostile
 * variants (strides, declared sizes, extra or corrupt zip entries) can be crafted without Python. The pickle is
 * what torch writes for a dict of tensors: `_rebuild_tensor_v2(persistent_load(('storage', torch.FloatStorage,
 * key, 'cpu', numel)), offset, size, stride, False, OrderedDict())` per entry.
 */
import { zipSync, type Zippable } from 'fflate';

export interface TensorSpec {
  name: string;
  /** storage key (the zip entry archive/data/<key>) */
  key: string;
  /** the storage's element count as the pickle declares it */
  numel: number;
  offset?: number;
  size: number[];
  stride: number[];
}

class Pickle {
  private parts: Buffer[] = [Buffer.from([0x80, 0x02])];
  op(...bytes: number[]): this {
    this.parts.push(Buffer.from(bytes));
    return this;
  }
  global(module: string, name: string): this {
    this.parts.push(Buffer.from(`c${module}\n${name}\n`, 'latin1'));
    return this;
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    this.parts.push(Buffer.from('X'), len, b);
    return this;
  }
  int(n: number): this {
    if (n >= 0 && n < 2 ** 31) {
      const b = Buffer.alloc(5);
      b[0] = 0x4a; // BININT
      b.writeInt32LE(n, 1);
      this.parts.push(b);
    } else {
      const b = Buffer.alloc(10); // LONG1, 8 bytes little endian
      b[0] = 0x8a;
      b[1] = 8;
      b.writeBigInt64LE(BigInt(n), 2);
      this.parts.push(b);
    }
    return this;
  }
  tuple(items: number[]): this {
    this.op(0x28); // MARK
    for (const i of items) this.int(i);
    return this.op(0x74); // TUPLE
  }
  bytes(): Buffer {
    return Buffer.concat([...this.parts, Buffer.from('.')]);
  }
}

/** data.pkl of a dict of tensors (float32 storages). */
export function stateDictPickle(tensors: TensorSpec[]): Buffer {
  const p = new Pickle();
  p.op(0x7d, 0x28); // EMPTY_DICT, MARK
  for (const t of tensors) {
    p.str(t.name);
    p.global('torch._utils', '_rebuild_tensor_v2');
    p.op(0x28); // MARK (args)
    p.op(0x28).str('storage').global('torch', 'FloatStorage').str(t.key).str('cpu').int(t.numel).op(0x74, 0x51); // tuple, BINPERSID
    p.int(t.offset ?? 0)
      .tuple(t.size)
      .tuple(t.stride)
      .op(0x89); // NEWFALSE
    p.global('collections', 'OrderedDict').op(0x29, 0x52); // EMPTY_TUPLE, REDUCE
    p.op(0x74, 0x52); // TUPLE, REDUCE
  }
  p.op(0x75); // SETITEMS
  return p.bytes();
}

/**
 * A zip .pth: archive/data.pkl, archive/byteorder and one entry per storage (stored, uncompressed, as torch
 * writes them), plus any extra entries given as they are.
 */
export function pthZip(tensors: TensorSpec[], storages: Record<string, Uint8Array>, extra: Zippable = {}): Uint8Array {
  const files: Zippable = {
    'archive/data.pkl': [stateDictPickle(tensors), { level: 0 }],
    'archive/byteorder': [Buffer.from('little'), { level: 0 }],
  };
  for (const [key, bytes] of Object.entries(storages)) files[`archive/data/${key}`] = [bytes, { level: 0 }];
  return zipSync({ ...files, ...extra });
}

export function floats(n: number, f = (i: number) => i): Uint8Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = f(i);
  return new Uint8Array(a.buffer);
}

/**
 * Rewrite the "uncompressed size" of a zip entry in both its local header and the central directory: what a
 * hostile archive claims about an entry before anything is inflated.
 */
export function patchOriginalSize(zip: Uint8Array, name: string, size: number): Uint8Array {
  const b = Buffer.from(zip);
  const nameBytes = Buffer.from(name);
  for (let i = 0; i + 46 < b.length; i++) {
    const sig = b.readUInt32LE(i);
    if (
      sig === 0x04034b50 &&
      b.readUInt16LE(i + 26) === nameBytes.length &&
      b.subarray(i + 30, i + 30 + nameBytes.length).equals(nameBytes)
    )
      b.writeUInt32LE(size, i + 22);
    if (
      sig === 0x02014b50 &&
      b.readUInt16LE(i + 28) === nameBytes.length &&
      b.subarray(i + 46, i + 46 + nameBytes.length).equals(nameBytes)
    )
      b.writeUInt32LE(size, i + 24);
  }
  return new Uint8Array(b);
}
