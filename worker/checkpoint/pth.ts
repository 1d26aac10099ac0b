// Reads PyTorch `.pth` files (torch.save of a state_dict, or of a checkpoint dict holding one) without Python.
//
// Two container formats exist:
// - zip (torch >= 1.6, the format of current releases): `<top>/data.pkl` is a protocol-2 pickle of the object
//   whose tensors refer, through pickle "persistent ids", to raw little-endian storages `<top>/data/<key>`;
// - legacy (torch < 1.6, or `_use_new_zipfile_serialization=False`): a run of pickles (magic number, protocol,
//   sys info, the object, the storage keys) followed by each storage as an int64 element count plus raw bytes.
//
// The pickle is decoded by `pickleparser` (a complete pickle VM); what it cannot know is torch's vocabulary, so
// this module registers the few torch/collections globals a state_dict uses and turns each tensor into a
// C-contiguous typed array, honouring storage offset and strides. No code from the file is ever executed:
// only the globals registered below do anything, every other global becomes an inert placeholder.
// Known pickleparser limits, harmless for state_dicts: LONG1 integers are read unsigned and at most 8 bytes
// (torch pickles shapes, strides and offsets as BININT*), hence the byte comparison of the legacy magic number.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { endianness } from 'node:os';
import { unzipSync } from 'fflate';
import { BufferReader, NameRegistry, Parser } from 'pickleparser';
import { CheckpointError } from '../../shared/errors.js';

export type TorchDtype = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'uint8' | 'bool';

/** A tensor as stored in the file, C-contiguous. Floating dtypes always come back as Float32Array; `dtype` keeps
 *  the dtype of the file. int64 -> BigInt64Array, int32 -> Int32Array, uint8 and bool -> Uint8Array (0/1). */
export interface TorchTensor {
  shape: number[];
  dtype: TorchDtype;
  data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array;
}

export type StateDict = Map<string, TorchTensor>;

/** Where a checkpoint dict keeps its tensors, most specific first. */
const NESTED_STATE_DICT_KEYS = ['state_dict', 'model', 'model_state_dict'];

const ELEMENT_SIZE: Record<TorchDtype, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  uint8: 1,
  bool: 1,
};

const STORAGE_DTYPES: Record<string, TorchDtype> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

// The pickle's view of a storage (resolved from its persistent id); bytes are attached after unpickling.
class StorageRef {
  constructor(
    readonly dtype: TorchDtype,
    readonly key: string,
    readonly numel: number,
    // Legacy files may pickle a view into a larger root storage: its offset in elements.
    readonly elementOffset = 0,
  ) {}
}

// `torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, ...)`, recorded and materialised
// later, once the entry's name is known for error messages.
class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly storageOffset: number,
    readonly shape: number[],
    readonly strides: number[],
  ) {}
}

// Marks a storage class such as torch.FloatStorage; pickle only passes it around inside persistent ids.
class StorageType {
  constructor(
    readonly name: string,
    readonly dtype: TorchDtype | undefined,
  ) {}
}

class PthError extends Error {}

/** Reads a `.pth` file; every error message starts with the file name. */
export async function readPth(file: string): Promise<StateDict> {
  let buf: Buffer;
  try {
    // O_NONBLOCK: a FIFO must not block the open; a device or FIFO is refused before anything is read
    const h = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const st = await h.stat();
      if (!st.isFile()) throw new CheckpointError('not a regular file', file);
      buf = await h.readFile();
    } finally {
      await h.close();
    }
  } catch (e) {
    throw new CheckpointError(`${file}: cannot read .pth file: ${(e as Error).message}`, file, { cause: e });
  }
  return parsePth(buf, file);
}

/** Parses the bytes of a `.pth` file; `nameForErrors` starts every error message. */
export function parsePth(buf: Uint8Array, nameForErrors: string): StateDict {
  if (endianness() !== 'LE')
    throw new CheckpointError(`${nameForErrors}: .pth storages are little-endian; this host is not`, nameForErrors);
  try {
    return isZip(buf) ? parseZip(buf) : parseLegacy(buf);
  } catch (e) {
    if (e instanceof PthError) throw new CheckpointError(`${nameForErrors}: ${e.message}`, nameForErrors);
    throw new CheckpointError(`${nameForErrors}: not a readable .pth file: ${(e as Error).message}`, nameForErrors, {
      cause: e,
    });
  }
}

function isZip(buf: Uint8Array): boolean {
  return buf.length >= 4 && buf[0] === 0x50 && buf[1] === 0x4b && buf[2] === 0x03 && buf[3] === 0x04;
}

/** data.pkl of a state_dict is kilobytes; anything near this is not one */
const MAX_PICKLE_BYTES = 64 << 20;
/** one storage (HarDNet's largest tensor is 4 MB; a whole HarDNet85 is 150 MB) */
const MAX_STORAGE_BYTES = 1 << 30;

interface ZipEntryInfo {
  name: string;
  size: number;
  originalSize: number;
  compression: number;
}

interface WantedEntry {
  max: number;
  /** the exact uncompressed size it must have, and the error when it has not */
  bytes?: number;
  mismatch?: (claimed: number) => string;
}

/**
 * Inflate only the named entries, each checked against the size it must have before anything is allocated: a zip
 * header's sizes are the archive's own claims, and fflate allocates what an entry claims before inflating it.
 */
function inflateEntries(buf: Uint8Array, want: Map<string, WantedEntry>): Record<string, Uint8Array> {
  const check = (e: ZipEntryInfo): boolean => {
    const w = want.get(e.name);
    if (w === undefined) return false;
    if (w.bytes !== undefined && e.originalSize !== w.bytes) throw new PthError(w.mismatch!(e.originalSize));
    if (e.originalSize > w.max)
      throw new PthError(`${e.name} is ${e.originalSize} bytes uncompressed, more than the ${w.max} allowed`);
    if (e.compression === 0 && e.size !== e.originalSize)
      throw new PthError(`${e.name}: a stored entry of ${e.size} bytes claims ${e.originalSize} uncompressed`);
    return true;
  };
  try {
    return unzipSync(buf, { filter: check });
  } catch (e) {
    if (e instanceof PthError) throw e;
    throw new PthError(`corrupt or truncated zip archive (${(e as Error).message})`);
  }
}

function parseZip(buf: Uint8Array): StateDict {
  // The central directory alone (names and claimed sizes), nothing inflated yet.
  const listing: ZipEntryInfo[] = [];
  try {
    unzipSync(buf, {
      filter: (e) => {
        listing.push(e);
        return false;
      },
    });
  } catch (e) {
    throw new PthError(`corrupt or truncated zip archive (${(e as Error).message})`);
  }
  // The top folder is named after the file torch.save was given ("archive" since torch 2.x): find it.
  const pklName = listing.map((e) => e.name).find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pklName === undefined) throw new PthError('zip archive has no <folder>/data.pkl: not a torch.save file');
  const top = pklName.slice(0, -'data.pkl'.length);
  const head = inflateEntries(
    buf,
    new Map([
      [pklName, { max: MAX_PICKLE_BYTES }],
      [`${top}byteorder`, { max: 16 }],
    ]),
  );
  const byteorder = head[`${top}byteorder`];
  if (byteorder !== undefined && new TextDecoder().decode(byteorder).trim() !== 'little') {
    throw new PthError('big-endian .pth files are not supported');
  }
  const obj = unpickle(new BufferReader(head[pklName]), (pid) => zipStorage(pid));
  return collectStateDict(obj, (refs) => {
    // only the storages that the returned tensors use, each exactly the size data.pkl declares for it
    const want = new Map<string, WantedEntry>();
    for (const ref of refs) {
      const bytes = ref.numel * ELEMENT_SIZE[ref.dtype];
      const name = `${top}data/${ref.key}`;
      want.set(name, {
        bytes,
        max: MAX_STORAGE_BYTES,
        mismatch: (n) => `${name} is ${n} bytes, but data.pkl declares ${ref.numel} ${ref.dtype} (${bytes} bytes)`,
      });
    }
    const entries = inflateEntries(buf, want);
    return (ref) => {
      const bytes = entries[`${top}data/${ref.key}`];
      if (bytes === undefined) throw new PthError(`storage ${top}data/${ref.key} is missing from the archive`);
      return bytes;
    };
  });
}

// Zip persistent id: ('storage', storage_type, key, location, numel).
function zipStorage(pid: unknown): StorageRef {
  if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) {
    throw new PthError(`unknown persistent id ${describe(pid)} in data.pkl`);
  }
  return new StorageRef(storageDtype(pid[1]), String(pid[2]), storageNumel(pid[4], pid[2]));
}

function isCount(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function storageNumel(v: unknown, key: unknown): number {
  const n = Number(v);
  if (!isCount(n)) throw new PthError(`storage ${describe(key)} declares ${describe(v)} elements`);
  return n;
}

// Legacy layout: magic-number pickle, protocol pickle, sys-info pickle, the object, the list of storage keys,
// then for each key in that order an int64 element count and the raw storage.
const LEGACY_MAGIC = Uint8Array.from([
  0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
]);

function parseLegacy(buf: Uint8Array): StateDict {
  // The magic number is a 10-byte pickle LONG1 that pickleparser cannot represent, so compare its bytes.
  if (buf.length < LEGACY_MAGIC.length || LEGACY_MAGIC.some((b, i) => buf[i] !== b)) {
    throw new PthError('neither a zip archive nor a legacy torch.save file (bad magic number)');
  }
  const reader = new BufferReader(buf.subarray(LEGACY_MAGIC.length));
  const noStorage = (): never => {
    throw new PthError('unexpected storage in legacy header');
  };
  const protocol = unpickle(reader, noStorage);
  if (protocol !== 1001) throw new PthError(`unsupported legacy protocol version ${describe(protocol)}`);
  const sysInfo = unpickle(reader, noStorage);
  if (sysInfo instanceof Map && sysInfo.get('little_endian') === false) {
    throw new PthError('big-endian .pth files are not supported');
  }
  const roots = new Map<string, StorageRef>();
  const obj = unpickle(reader, (pid) => legacyStorage(pid, roots));
  const keys = unpickle(reader, noStorage);
  if (!Array.isArray(keys)) throw new PthError('legacy storage key list is not a list');
  const base = LEGACY_MAGIC.length + reader.position;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const rootBytes = new Map<string, Uint8Array>();
  let pos = base;
  for (const key of keys) {
    const root = roots.get(String(key));
    if (root === undefined) throw new PthError(`legacy storage ${describe(key)} is listed but never used`);
    if (pos + 8 > buf.length) throw new PthError(`truncated: storage ${root.key} header is past the end of the file`);
    const numel = Number(view.getBigInt64(pos, true));
    if (numel !== root.numel)
      throw new PthError(`storage ${root.key} holds ${numel} elements, but the pickle declares ${root.numel}`);
    const end = pos + 8 + numel * ELEMENT_SIZE[root.dtype];
    if (end > buf.length)
      throw new PthError(`truncated: storage ${root.key} needs ${end} bytes, file has ${buf.length}`);
    // Copy into a fresh buffer: typed-array views need aligned offsets, and storages sit at any byte offset
    // here. (Buffer#slice would not copy, hence the Uint8Array constructor.)
    rootBytes.set(root.key, new Uint8Array(buf.subarray(pos + 8, end)));
    pos = end;
  }
  return collectStateDict(obj, () => (ref) => {
    const bytes = rootBytes.get(ref.key);
    if (bytes === undefined) throw new PthError(`storage ${ref.key} is used but not stored`);
    return bytes;
  });
}

// Legacy persistent id: ('storage', storage_type, root_key, location, numel, view_metadata), where
// view_metadata is null or (view_key, offset, view_numel) for a view into the root storage.
function legacyStorage(pid: unknown, roots: Map<string, StorageRef>): StorageRef {
  if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) {
    throw new PthError(`unknown persistent id ${describe(pid)} in legacy pickle`);
  }
  const dtype = storageDtype(pid[1]);
  const key = String(pid[2]);
  let root = roots.get(key);
  if (root === undefined) {
    root = new StorageRef(dtype, key, storageNumel(pid[4], key));
    roots.set(key, root);
  }
  const viewMeta = pid[5];
  if (Array.isArray(viewMeta)) {
    const offset = Number(viewMeta[1]);
    const numel = Number(viewMeta[2]);
    if (!isCount(offset) || !isCount(numel) || offset + numel > root.numel) {
      throw new PthError(
        `storage view ${describe(viewMeta[0])} (offset ${describe(offset)}, ${describe(numel)} elements) ` +
          `is not inside storage ${key} of ${root.numel} elements`,
      );
    }
    return new StorageRef(dtype, key, numel, offset);
  }
  return root;
}

function storageDtype(type: unknown): TorchDtype {
  if (type instanceof StorageType && type.dtype !== undefined) return type.dtype;
  const name = type instanceof StorageType ? type.name : describe(type);
  throw new PthError(`unsupported storage type ${name} (supported: ${Object.keys(STORAGE_DTYPES).join(', ')})`);
}

// The globals a state_dict pickle may name. Anything else resolves to an inert placeholder object and is
// reported if a tensor is expected where it ends up.
function torchNames(): NameRegistry {
  const names = new NameRegistry();
  names.register('collections', 'OrderedDict', () => new Map());
  const rebuildTensor = (storage: unknown, offset: unknown, size: unknown, stride: unknown): TensorRef => {
    if (!(storage instanceof StorageRef) || !Array.isArray(size) || !Array.isArray(stride)) {
      throw new PthError(`malformed tensor record (storage ${describe(storage)}, size ${describe(size)})`);
    }
    return new TensorRef(storage, Number(offset), size.map(Number), stride.map(Number));
  };
  names.register('torch._utils', '_rebuild_tensor_v2', rebuildTensor);
  names.register('torch._utils', '_rebuild_tensor', rebuildTensor);
  // nn.Parameter pickles as _rebuild_parameter(data, requires_grad, hooks[, state]): the data is the tensor.
  names.register('torch._utils', '_rebuild_parameter', (data: unknown) => data);
  names.register('torch._utils', '_rebuild_parameter_with_state', (data: unknown) => data);
  // Tensor subclasses / tensors with attributes: _rebuild_from_type_v2(func, type, args, state).
  names.register('torch._tensor', '_rebuild_from_type_v2', (func: unknown, _type: unknown, args: unknown) => {
    if (typeof func !== 'function' || !Array.isArray(args))
      throw new PthError('malformed _rebuild_from_type_v2 record');
    return func(...args);
  });
  for (const [name, dtype] of Object.entries(STORAGE_DTYPES)) {
    names.register('torch', name, storageTypeMarker(name, dtype));
  }
  // Every other torch.*Storage is recognised so that the error names it rather than failing obscurely.
  const fallback = names.onMissingName.bind(names);
  names.onMissingName = (module: string, name: string) =>
    module === 'torch' && name.endsWith('Storage') ? storageTypeMarker(name, undefined) : fallback(module, name);
  return names;
}

function storageTypeMarker(name: string, dtype: TorchDtype | undefined): () => StorageType {
  // NameRegistry stores functions; the marker's instance rides along as a property read by storageDtype via
  // the persistent-id resolver below.
  const marker = new StorageType(`torch.${name}`, dtype);
  return Object.assign(() => marker, { marker });
}

function unpickle(reader: BufferReader, resolveStorage: (pid: unknown) => StorageRef): unknown {
  const parser = new Parser({
    nameResolver: torchNames(),
    persistentResolver: {
      resolve: (pid: unknown) => {
        // Replace the storage-type marker function by its StorageType before interpreting the id.
        const id = Array.isArray(pid) ? pid.map((x) => (typeof x === 'function' && 'marker' in x ? x.marker : x)) : pid;
        return resolveStorage(id);
      },
    },
    unpicklingTypeOfDictionary: 'Map',
  });
  try {
    return parser.read(reader);
  } catch (e) {
    if (e instanceof PthError) throw e;
    throw new PthError(`corrupt pickle at byte ${reader.position}: ${(e as Error).message}`);
  }
}

// Picks the dict of tensors out of what was unpickled and materialises every tensor.
function collectStateDict(
  obj: unknown,
  storagesFor: (refs: StorageRef[]) => (ref: StorageRef) => Uint8Array,
): StateDict {
  if (!(obj instanceof Map)) throw new PthError(`top-level object is ${describe(obj)}, not a dict of tensors`);
  let dict: Map<unknown, unknown> = obj;
  if (![...dict.values()].some((v) => v instanceof TensorRef)) {
    const nestedKey = NESTED_STATE_DICT_KEYS.find((k) => dict.get(k) instanceof Map);
    if (nestedKey === undefined) {
      const keys = [...dict.keys()].map(String).join(', ');
      throw new PthError(`no tensors at the top level and no ${NESTED_STATE_DICT_KEYS.join('/')} dict (keys: ${keys})`);
    }
    dict = dict.get(nestedKey) as Map<unknown, unknown>;
  }
  // Count the tensors per storage: a storage used once, whole and in order, can be handed over without a copy.
  const uses = new Map<string, number>();
  for (const v of dict.values()) {
    if (v instanceof TensorRef) uses.set(v.storage.key, (uses.get(v.storage.key) ?? 0) + 1);
  }
  // Every storage once, by key; a key must mean one storage (a second declaration with another size or dtype
  // would let a tensor read past what was checked). Legacy views into a root storage are checked where they are read.
  const roots = new Map<string, StorageRef>();
  for (const [name, value] of dict) {
    if (!(value instanceof TensorRef)) throw new PthError(`entry ${String(name)} is ${describe(value)}, not a tensor`);
    const st = value.storage;
    const seen = roots.get(st.key);
    if (seen === undefined) roots.set(st.key, st);
    else if (
      st.elementOffset === 0 &&
      seen.elementOffset === 0 &&
      (seen.dtype !== st.dtype || seen.numel !== st.numel)
    ) {
      throw new PthError(
        `storage ${st.key} is declared twice, differently (${seen.numel} ${seen.dtype}, then ${st.numel} ${st.dtype})`,
      );
    }
  }
  const bytesOf = storagesFor([...roots.values()]);
  const out: StateDict = new Map();
  for (const [name, value] of dict) {
    const ref = value as TensorRef;
    out.set(String(name), materialise(ref, bytesOf(ref.storage), uses.get(ref.storage.key) === 1, String(name)));
  }
  return out;
}

type Contiguous = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array;

function materialise(ref: TensorRef, bytes: Uint8Array, soleUser: boolean, name: string): TorchTensor {
  const { storage, shape, strides } = ref;
  const size = ELEMENT_SIZE[storage.dtype];
  if (shape.length !== strides.length || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new PthError(`tensor ${name}: bad size ${describe(shape)} / stride ${describe(strides)}`);
  }
  // A stride of 0 repeats one element along a dimension: from a single stored float it would make a tensor of
  // any size. torch only writes one on a dimension of size 1, where it means nothing.
  const zero = strides.findIndex((st, i) => st === 0 && shape[i] > 1);
  if (zero >= 0)
    throw new PthError(
      `tensor ${name}: stride 0 on dimension ${zero} of size ${shape[zero]} (only a dimension of size 1 may have one)`,
    );
  const numel = shape.reduce((a, b) => a * b, 1);
  // Distinct strides of one storage can still overlap ((1, 1)); a state_dict tensor never has more elements than
  // its storage, so neither may a tensor here: what is allocated stays bounded by what the file declares.
  if (numel > storage.numel) {
    throw new PthError(
      `tensor ${name}: ${numel} elements, more than the ${storage.numel} its storage ${storage.key} declares`,
    );
  }
  const offset = storage.elementOffset + ref.storageOffset;
  const available = Math.floor(bytes.byteLength / size);
  if (numel > 0) {
    let last = offset;
    for (let i = 0; i < shape.length; i++) last += (shape[i] - 1) * strides[i];
    if (offset < 0 || strides.some((s) => s < 0) || last >= available) {
      throw new PthError(
        `tensor ${name}: reads element ${last} of storage ${storage.key}, which holds ${available} ` +
          `${storage.dtype} (file truncated or corrupt)`,
      );
    }
  }
  const raw = rawView(storage.dtype, bytes);
  const contiguous = strides.every((s, i) => shape[i] === 1 || s === contiguousStride(shape, i));
  let data: Contiguous;
  if (contiguous) {
    // subarray() shares memory; only safe when no other tensor sees this storage and it is used whole.
    data = soleUser && offset === 0 && numel === raw.length ? raw : raw.slice(offset, offset + numel);
  } else {
    data = gather(raw, shape, strides, offset, numel);
  }
  return { shape: [...shape], dtype: storage.dtype, data: toOutputType(storage.dtype, data) };
}

function contiguousStride(shape: number[], dim: number): number {
  let s = 1;
  for (let i = dim + 1; i < shape.length; i++) s *= shape[i];
  return s;
}

function rawView(dtype: TorchDtype, bytes: Uint8Array): Contiguous {
  const n = Math.floor(bytes.byteLength / ELEMENT_SIZE[dtype]);
  // Storages are fresh copies (fflate, or the legacy reader) starting at byteOffset 0, so views are aligned;
  // copy anyway if a caller's buffer ever breaks that, rather than fail with a RangeError.
  if (bytes.byteOffset % ELEMENT_SIZE[dtype] !== 0) bytes = new Uint8Array(bytes);
  switch (dtype) {
    case 'float32':
      return new Float32Array(bytes.buffer, bytes.byteOffset, n);
    case 'float64':
      return new Float64Array(bytes.buffer, bytes.byteOffset, n);
    case 'float16':
    case 'bfloat16':
      return new Uint16Array(bytes.buffer, bytes.byteOffset, n);
    case 'int64':
      return new BigInt64Array(bytes.buffer, bytes.byteOffset, n);
    case 'int32':
      return new Int32Array(bytes.buffer, bytes.byteOffset, n);
    case 'uint8':
    case 'bool':
      return bytes.subarray(0, n);
  }
}

// Copies a strided view out in C order. The innermost dimension is a plain strided loop; the outer
// dimensions advance like an odometer, so the cost is one add per element.
function gather<T extends Contiguous>(src: T, shape: number[], strides: number[], offset: number, numel: number): T {
  const dst = new (src.constructor as new (n: number) => T)(numel);
  if (numel === 0) return dst;
  const rank = shape.length;
  const innerN = shape[rank - 1];
  const innerS = strides[rank - 1];
  const index = new Array<number>(rank).fill(0);
  let base = offset;
  const s = src as unknown as { [i: number]: number | bigint };
  const d = dst as unknown as { [i: number]: number | bigint };
  for (let o = 0; o < numel; o += innerN) {
    for (let j = 0, p = base; j < innerN; j++, p += innerS) d[o + j] = s[p];
    for (let dim = rank - 2; dim >= 0; dim--) {
      if (++index[dim] < shape[dim]) {
        base += strides[dim];
        break;
      }
      base -= (shape[dim] - 1) * strides[dim];
      index[dim] = 0;
    }
  }
  return dst;
}

function toOutputType(dtype: TorchDtype, data: Contiguous): TorchTensor['data'] {
  switch (dtype) {
    case 'float64':
      return new Float32Array(data as Float64Array);
    case 'float16':
      return halfToFloat32(data as Uint16Array);
    case 'bfloat16': {
      // bfloat16 is the top half of a float32.
      const out = new Uint32Array(data.length);
      const src = data as Uint16Array;
      for (let i = 0; i < src.length; i++) out[i] = src[i] << 16;
      return new Float32Array(out.buffer);
    }
    default:
      return data;
  }
}

let halfTable: Float32Array | undefined;

// float16 -> float32 through a 65,536-entry table (256 KiB, built once): no JS has a float16 array in Node 20.
function halfToFloat32(src: Uint16Array): Float32Array {
  if (halfTable === undefined) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1;
      const exp = (h >> 10) & 0x1f;
      const frac = h & 0x3ff;
      halfTable[h] =
        exp === 0
          ? sign * frac * 2 ** -24
          : exp === 31
            ? frac
              ? NaN
              : sign * Infinity
            : sign * (1 + frac / 1024) * 2 ** (exp - 15);
    }
  }
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = halfTable[src[i]];
  return out;
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (v instanceof TensorRef) return 'a tensor';
  if (v instanceof Map) return 'a dict';
  if (Array.isArray(v)) return `a list/tuple (${v.map(describe).join(', ')})`;
  if (typeof v === 'object' || typeof v === 'function') {
    const p = v as { __module__?: string; __name__?: string };
    if (p.__module__ !== undefined) return `${p.__module__}.${p.__name__}`;
    return Object.prototype.toString.call(v);
  }
  return JSON.stringify(typeof v === 'bigint' ? v.toString() : v);
}
