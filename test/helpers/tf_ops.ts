/**
 * What TensorFlow 2.9 (libtensorflow 2.9.1, the build tfjs-node 4.22 downloads: its scripts/deps-constants.js)
 * accepts for each op the model's step, eval and infer make tfjs-node execute, written from TensorFlow's op
 * registrations at v2.9.1:
 *   nn_ops.cc     https://github.com/tensorflow/tensorflow/blob/v2.9.1/tensorflow/core/ops/nn_ops.cc
 *   array_ops.cc  https://github.com/tensorflow/tensorflow/blob/v2.9.1/tensorflow/core/ops/array_ops.cc
 *   math_ops.cc   https://github.com/tensorflow/tensorflow/blob/v2.9.1/tensorflow/core/ops/math_ops.cc
 *   padding.cc    https://github.com/tensorflow/tensorflow/blob/v2.9.1/tensorflow/core/util/padding.cc
 *                 (GetPaddingAttrString: padding: {'SAME', 'VALID'}; ...WithExplicit adds 'EXPLICIT';
 *                 GetExplicitPaddingsAttrString: explicit_paddings: list(int) = []; CheckValidPadding)
 *   tensor_format.cc (GetConvnetDataFormatAttrString: data_format: {'NHWC', 'NCHW'} = 'NHWC')
 * An attribute the OpDef does not declare fails the op (node_def_util.cc ValidateNodeDef: "NodeDef mentions attr
 * ... not in Op"); a value outside an attribute's allowed set fails it too (ValidateAttrValue). Where this table
 * is unsure of a 2.9 detail it is stricter than TensorFlow (padding of the depthwise and max-pool ops: 'SAME' and
 * 'VALID' only), so it can refuse something TensorFlow takes, never the reverse. Beyond the registry it checks
 * what TensorFlow's CPU kernels require of these ops (conv_ops.cc, maxpooling_op.cc: NHWC only; strides and
 * dilations of 1 in the batch and depth dimensions), since tfjs-node on a CPU-only machine runs those.
 */
import { TF_ATTR, TF_DTYPE, type RecordedOp } from './tfjs_node.js';

const { TF_FLOAT: F, TF_INT32: I32, TF_INT64: I64, TF_BOOL: B, TF_UINT8: U8 } = TF_DTYPE;
// the dtypes tfjs can send; TensorFlow's sets (numbertype, realnumbertype, type) are larger
const REAL: number[] = [F, I32, I64, U8];
const ANY: number[] = [F, I32, I64, U8, B, TF_DTYPE.TF_STRING, TF_DTYPE.TF_COMPLEX64];
const INDEX: number[] = [I32, I64];

type Attr =
  | { kind: 'type'; allowed: number[] }
  | { kind: 'int'; min?: number }
  | { kind: 'float' }
  | { kind: 'bool' }
  | { kind: 'string'; allowed: string[] }
  | { kind: 'list(int)'; minLength?: number };
interface OpDef {
  /** number of inputs; 'N+k': a list of N (attr N) and k more */
  inputs: number | `N+${number}`;
  attrs: Record<string, Attr & { required?: boolean }>;
  /** conv/pool: NHWC and unit batch/depth strides, as TensorFlow's CPU kernels need */
  spatial?: boolean;
}

const T = (allowed = REAL): Attr => ({ kind: 'type', allowed });
const unary: OpDef = { inputs: 1, attrs: { T: T() } };
const binary: OpDef = { inputs: 2, attrs: { T: T() } };
const reduction: OpDef = { inputs: 2, attrs: { keep_dims: { kind: 'bool' }, T: T(), Tidx: T(INDEX) } };
const SAME_VALID = ['SAME', 'VALID'];
const WITH_EXPLICIT = ['SAME', 'VALID', 'EXPLICIT'];
const DATA_FORMAT: Attr = { kind: 'string', allowed: ['NHWC', 'NCHW'] };
const conv = (inputs: number, padding: string[], explicit: boolean): OpDef => ({
  inputs,
  spatial: true,
  attrs: {
    T: T([F]),
    strides: { kind: 'list(int)', required: true },
    padding: { kind: 'string', allowed: padding, required: true },
    ...(explicit ? { explicit_paddings: { kind: 'list(int)' } as Attr } : {}),
    data_format: DATA_FORMAT,
    dilations: { kind: 'list(int)' },
  },
});
const withCudnn = (d: OpDef): OpDef => ({ ...d, attrs: { ...d.attrs, use_cudnn_on_gpu: { kind: 'bool' } } });
const pool = (inputs: number): OpDef => ({
  inputs,
  spatial: true,
  attrs: {
    T: T([F]),
    ksize: { kind: 'list(int)', minLength: 4, required: true },
    strides: { kind: 'list(int)', minLength: 4, required: true },
    padding: { kind: 'string', allowed: SAME_VALID, required: true },
    data_format: DATA_FORMAT,
  },
});

export const TF_OPS: Record<string, OpDef> = {
  // nn_ops.cc
  Conv2D: withCudnn(conv(2, WITH_EXPLICIT, true)),
  Conv2DBackpropInput: withCudnn(conv(3, WITH_EXPLICIT, true)),
  Conv2DBackpropFilter: withCudnn(conv(3, WITH_EXPLICIT, true)),
  DepthwiseConv2dNative: conv(2, SAME_VALID, true),
  DepthwiseConv2dNativeBackpropInput: conv(3, SAME_VALID, true),
  DepthwiseConv2dNativeBackpropFilter: conv(3, SAME_VALID, true),
  MaxPool: pool(1),
  MaxPoolGrad: pool(3),
  Relu6: unary,
  Softmax: { inputs: 1, attrs: { T: T([F]) } },
  TopKV2: { inputs: 2, attrs: { sorted: { kind: 'bool' }, T: T() } },
  FusedBatchNorm: {
    inputs: 5,
    attrs: {
      T: T([F]),
      epsilon: { kind: 'float' },
      exponential_avg_factor: { kind: 'float' },
      data_format: DATA_FORMAT,
      is_training: { kind: 'bool' },
    },
  },
  // array_ops.cc
  PadV2: { inputs: 3, attrs: { T: T(ANY), Tpaddings: T(INDEX) } },
  Reshape: { inputs: 2, attrs: { T: T(ANY), Tshape: T(INDEX) } },
  Fill: { inputs: 2, attrs: { T: T(ANY), index_type: T(INDEX) } },
  ConcatV2: { inputs: 'N+1', attrs: { N: { kind: 'int', min: 2 }, T: T(ANY), Tidx: T(INDEX) } },
  Transpose: { inputs: 2, attrs: { T: T(ANY), Tperm: T(INDEX) } },
  SplitV: { inputs: 3, attrs: { num_split: { kind: 'int', min: 1, required: true }, T: T(ANY), Tlen: T(INDEX) } },
  Slice: { inputs: 3, attrs: { T: T(ANY), Index: T(INDEX) } },
  OneHot: { inputs: 4, attrs: { axis: { kind: 'int' }, T: T(ANY), TI: T([U8, I32, I64]) } },
  Identity: { inputs: 1, attrs: { T: T(ANY) } },
  Select: { inputs: 3, attrs: { T: T(ANY) } },
  // math_ops.cc
  Add: binary,
  AddV2: binary,
  Sub: binary,
  Mul: binary,
  RealDiv: binary,
  Maximum: binary,
  Minimum: binary,
  AddN: { inputs: 'N+0', attrs: { N: { kind: 'int', min: 1 }, T: T() } },
  Square: unary,
  Rsqrt: unary,
  Sqrt: unary,
  Exp: unary,
  Log: unary,
  Neg: unary,
  Floor: unary,
  IsNan: { inputs: 1, attrs: { T: T([F]) } },
  Greater: binary,
  GreaterEqual: binary,
  Less: binary,
  LessEqual: binary,
  Equal: { inputs: 2, attrs: { T: T(ANY), incompatible_shape_error: { kind: 'bool' } } },
  LogicalAnd: { inputs: 2, attrs: {} },
  Cast: { inputs: 1, attrs: { SrcT: T(ANY), DstT: T(ANY), Truncate: { kind: 'bool' } } },
  BatchMatMulV2: { inputs: 2, attrs: { T: T(), adj_x: { kind: 'bool' }, adj_y: { kind: 'bool' } } },
  Mean: reduction,
  Sum: reduction,
  Max: reduction,
  Min: reduction,
  Prod: reduction,
  ArgMax: { inputs: 2, attrs: { T: T(), Tidx: T(INDEX), output_type: T(INDEX) } },
};

const ATTR_CODE: Record<Attr['kind'], number> = {
  type: TF_ATTR.TF_ATTR_TYPE,
  int: TF_ATTR.TF_ATTR_INT,
  'list(int)': TF_ATTR.TF_ATTR_INT,
  float: TF_ATTR.TF_ATTR_FLOAT,
  bool: TF_ATTR.TF_ATTR_BOOL,
  string: TF_ATTR.TF_ATTR_STRING,
};

/** Why TensorFlow 2.9 would refuse this op as tfjs-node sends it; empty when it accepts it. */
export function tfOpProblems(r: RecordedOp): string[] {
  const def = TF_OPS[r.op];
  if (!def)
    return [
      `${r.op}: not in this table of TensorFlow 2.9 ops (add it from TensorFlow's op registration, with a citation)`,
    ];
  const problems: string[] = [];
  const attrs = new Map(r.attrs.map((a) => [a.name, a]));
  for (const a of r.attrs) {
    const spec = def.attrs[a.name];
    if (!spec) {
      problems.push(`attr '${a.name}' is not declared by the op`);
      continue;
    }
    if (a.type !== ATTR_CODE[spec.kind])
      problems.push(`attr '${a.name}' sent as attr type ${a.type}, declared ${spec.kind}`);
    const v = a.value;
    switch (spec.kind) {
      case 'type':
        if (!spec.allowed.includes(v as number)) problems.push(`attr '${a.name}' = dtype ${String(v)}, not allowed`);
        break;
      case 'int':
        if (!Number.isInteger(v) || (spec.min !== undefined && (v as number) < spec.min))
          problems.push(`attr '${a.name}' = ${String(v)}`);
        break;
      case 'float':
        if (typeof v !== 'number') problems.push(`attr '${a.name}' = ${String(v)}, not a float`);
        break;
      case 'bool':
        if (typeof v !== 'boolean') problems.push(`attr '${a.name}' = ${String(v)}, not a bool`);
        break;
      case 'string':
        if (!spec.allowed.includes(v as string))
          problems.push(`attr '${a.name}' = ${JSON.stringify(v)}, allowed ${spec.allowed.join('/')}`);
        break;
      case 'list(int)':
        if (
          !Array.isArray(v) ||
          !v.every(Number.isInteger) ||
          (spec.minLength !== undefined && v.length < spec.minLength)
        )
          problems.push(`attr '${a.name}' = ${JSON.stringify(v)}`);
        break;
    }
  }
  for (const [name, spec] of Object.entries(def.attrs))
    if (spec.required && !attrs.has(name)) problems.push(`required attr '${name}' missing`);
  const n = attrs.get('N')?.value as number | undefined;
  const inputs = typeof def.inputs === 'number' ? def.inputs : (n ?? NaN) + Number(def.inputs.slice(2));
  if (r.inputs.length !== inputs) problems.push(`${r.inputs.length} inputs, the op takes ${inputs}`);
  if (def.spatial) problems.push(...spatialProblems(attrs));
  return problems.map((p) => `${r.op}: ${p}`);
}

/** padding/explicit_paddings consistency (padding.cc CheckValidPadding) and the CPU kernels' NHWC-only rules. */
function spatialProblems(attrs: Map<string, { value: unknown }>): string[] {
  const out: string[] = [];
  const format = (attrs.get('data_format')?.value as string | undefined) ?? 'NHWC';
  if (format !== 'NHWC') out.push(`data_format ${format}: TensorFlow's CPU kernels take NHWC only`);
  for (const name of ['strides', 'ksize', 'dilations']) {
    const v = attrs.get(name)?.value as number[] | undefined;
    if (!v) continue;
    if (v.length !== 4) out.push(`${name} ${JSON.stringify(v)}: 4 values expected`);
    else if (name !== 'ksize' && (v[0] !== 1 || v[3] !== 1))
      out.push(`${name} ${JSON.stringify(v)}: batch and depth must be 1`);
    if (name === 'dilations' && v.some((d) => d !== 1))
      out.push(`dilations ${JSON.stringify(v)}: the CPU kernels take no dilation here`);
  }
  const padding = attrs.get('padding')?.value;
  const explicit = (attrs.get('explicit_paddings')?.value as number[] | undefined) ?? [];
  if (padding === 'EXPLICIT') {
    if (explicit.length !== 8 || explicit.some((p) => !Number.isInteger(p) || p < 0))
      out.push(`EXPLICIT padding needs 8 explicit_paddings >= 0, got ${JSON.stringify(explicit)}`);
    else if (explicit[0] || explicit[1] || explicit[6] || explicit[7])
      out.push(`explicit_paddings ${JSON.stringify(explicit)} pad the batch or depth dimension`);
  } else if (explicit.length !== 0) {
    out.push(`explicit_paddings given with padding ${String(padding)}`);
  }
  return out;
}
