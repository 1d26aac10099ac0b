import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { dump, load } from 'js-yaml';
import {
  ConfigError,
  evalScale,
  formatConfig,
  isBuiltinDataset,
  loadConfig,
  parsePythonLiteral,
  saveConfig,
  type TrainConfig,
} from '../shared/config.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const HARDNET = path.resolve(REPO_ROOT, 'configs/HarDNet68_best_v2.yaml');
const DATA = [
  'TRAIN.file_list=data/train_list.txt',
  'TRAIN.data_dir=data/',
  'VALID.file_list=data/val_list.txt',
  'VALID.data_dir=data/',
];

function quiet(): { warn: (m: string) => void; warnings: string[] } {
  const warnings: string[] = [];
  return { warn: (m) => warnings.push(m), warnings };
}

/** A temp copy of the HarDNet config with `edit` applied to its parsed tree. */
function editedHardnet(edit: (tree: Record<string, any>) => void): string {
  const tree = load(fs.readFileSync(HARDNET, 'utf8')) as Record<string, any>;
  edit(tree);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
  const file = path.join(dir, 'edited.yaml');
  fs.writeFileSync(file, dump(tree));
  return file;
}

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${(e as Error).stack}`);
    return e.message;
  }
  assert.fail('expected an error');
}

test('the real HarDNet68 config loads unchanged apart from -o data paths, typed as PaddleClas types it', () => {
  const q = quiet();
  const cfg = loadConfig(HARDNET, DATA, { ...q, worldSize: 4 });
  assert.deepEqual(q.warnings, []);
  assert.equal(cfg.mode, 'train');
  assert.equal(cfg.ARCHITECTURE.name, 'HarDNet68');
  assert.equal(cfg.classes_num, 1000);
  assert.equal(cfg.total_images, 1281167);
  assert.equal(cfg.validate, true);
  assert.equal(cfg.use_mix, false);
  assert.equal(cfg.ls_epsilon, -1);
  assert.deepEqual(cfg.image_shape, [3, 224, 224]);
  assert.deepEqual(cfg.LEARNING_RATE, { function: 'Cosine', params: { lr: 0.05 } });
  assert.deepEqual(cfg.OPTIMIZER, {
    function: 'Momentum',
    params: { momentum: 0.9 },
    regularizer: { function: 'L2', factor: 0.00006 },
  });
  assert.equal(cfg.TRAIN?.batch_size, 256);
  assert.equal(cfg.TRAIN?.file_list, 'data/train_list.txt');
  assert.equal(cfg.TRAIN?.shuffle_seed, 0);
  assert.equal(cfg.TRAIN?.delimiter, ' ');
  assert.deepEqual(cfg.TRAIN?.transforms[0], { DecodeImage: { to_rgb: true, to_np: false, channel_first: false } });
  // "1./255." is not a Python literal: it stays a string, evaluated where it is used
  assert.deepEqual(cfg.TRAIN?.transforms[3], {
    NormalizeImage: { scale: '1./255.', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], order: '' },
  });
  assert.deepEqual(cfg.TRAIN?.transforms[4], { ToCHWImage: null });
  assert.equal(cfg.VALID?.transforms[3].NormalizeImage?.scale, '1.0/255.0');
  // PaddleClas defaults and the project's own keys
  assert.equal(cfg.print_interval, 10);
  assert.equal(cfg.last_epoch, -1);
  assert.equal(cfg.checkpoints, '');
  assert.equal(cfg.backend, 'auto');
  assert.equal(cfg.seed, 0);
  assert.equal(cfg.strict_data, false);
  assert.equal(cfg.allreduce_dtype, 'float32');
  assert.equal(cfg.sharded_optimizer, false);
  assert.equal(cfg.manual_gc, true);
  assert.equal(loadConfig(HARDNET, [...DATA, 'manual_gc=False'], quiet()).manual_gc, false);
  assert.equal(cfg.collective_timeout_s, 300);
  assert.equal(cfg.metrics_file, path.join('output', 'HarDNet68_v2', 'HarDNet68', 'metrics.jsonl'));
  assert.equal(isBuiltinDataset(cfg.TRAIN), false);
});

test('the built-in quickstart: HarDNet39ds on the bundled Fashion-MNIST markers', () => {
  const cfg = loadConfig(undefined, [], quiet());
  assert.equal(cfg.ARCHITECTURE.name, 'HarDNet39ds');
  assert.equal(cfg.classes_num, 10);
  assert.deepEqual(cfg.image_shape, [3, 32, 32]);
  assert.equal(cfg.epochs, 1);
  // 5000 bundled training images at a global batch of 64: 78 steps, enough for BN statistics to settle in one epoch
  assert.equal(cfg.total_images, 5000);
  assert.equal(cfg.TRAIN?.batch_size, 64);
  assert.equal(cfg.VALID?.batch_size, 256);
  assert.equal(cfg.LEARNING_RATE?.function, 'Cosine');
  assert.ok(isBuiltinDataset(cfg.TRAIN) && isBuiltinDataset(cfg.VALID));
  assert.deepEqual(
    cfg.TRAIN?.transforms.map((t) => Object.keys(t)[0]),
    ['DecodeImage', 'ResizeImage', 'RandFlipImage', 'NormalizeImage', 'ToCHWImage'],
  );
  // overrides work on it like on any config; the full-data config loads too
  assert.equal(loadConfig(undefined, ['epochs=3'], quiet()).epochs, 3);
  const full = loadConfig(path.join(REPO_ROOT, 'configs/fashion_mnist_hardnet39ds.yaml'), [], {
    ...quiet(),
    worldSize: 2,
  });
  assert.equal(full.epochs, 5);
  assert.equal(full.TRAIN?.batch_size, 128);
  assert.equal(isBuiltinDataset(full.TRAIN), false);
});

test('Python literals: what ast.literal_eval accepts becomes a value, anything else stays a string', () => {
  const lit = (s: string): unknown => parsePythonLiteral(s)?.value;
  assert.equal(lit('True'), true);
  assert.equal(lit('False'), false);
  assert.equal(lit('None'), null);
  assert.equal(lit('0.1'), 0.1);
  assert.equal(lit('-5'), -5);
  assert.equal(lit('1e-5'), 1e-5);
  assert.equal(lit('1.'), 1);
  assert.equal(lit('.5'), 0.5);
  assert.equal(lit('1_000'), 1000);
  assert.equal(lit('0x10'), 16);
  assert.deepEqual(lit('[1, 2]'), [1, 2]);
  assert.deepEqual(lit("[0.5, 'a', [True]]"), [0.5, 'a', [true]]);
  assert.deepEqual(lit('(1, 2)'), [1, 2]);
  assert.deepEqual(lit('(1,)'), [1]);
  assert.equal(lit('(7)'), 7);
  assert.deepEqual(lit("{'alpha': 0.2}"), { alpha: 0.2 });
  assert.equal(lit("'abc'"), 'abc');
  for (const s of [
    '1./255.',
    'train',
    'Cosine',
    '',
    '1+2',
    '010',
    '1.2.3',
    "__import__('os')",
    '[1, 2',
    'true',
    '1j',
  ]) {
    assert.equal(parsePythonLiteral(s), undefined, s);
  }
  // quoted YAML strings are typed the same way
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
  const file = path.join(dir, 'quoted.yaml');
  const tree = load(fs.readFileSync(HARDNET, 'utf8')) as Record<string, any>;
  tree.validate = 'False';
  tree.epochs = '120';
  tree.image_shape = '[3, 192, 192]';
  fs.writeFileSync(file, dump(tree));
  const cfg = loadConfig(file, DATA, quiet());
  assert.equal(cfg.validate, false);
  assert.equal(cfg.epochs, 120);
  assert.deepEqual(cfg.image_shape, [3, 192, 192]);
});

test('evalScale computes products and quotients of numbers and nothing else', () => {
  assert.equal(evalScale('1./255.'), 1 / 255);
  assert.equal(evalScale('1.0/255.0'), 1 / 255);
  assert.equal(evalScale(' 2 * 3 / 4 '), 1.5);
  assert.equal(evalScale('0.00392'), 0.00392);
  assert.equal(evalScale(0.5), 0.5);
  for (const bad of ['1/0', '1+2', "__import__('os')", 'scale', ''])
    assert.throws(() => evalScale(bad), ConfigError, bad);
  // a bad scale in a config is caught at load time, naming its key path
  const msg = errorOf(() => loadConfig(HARDNET, [...DATA, 'TRAIN.transforms.3.NormalizeImage.scale=1/x'], quiet()));
  assert.match(msg, /config key TRAIN\.transforms\.3\.NormalizeImage\.scale: scale "1\/x"/);
});

test('-o walks maps by name and lists by index, and types its values', () => {
  const q = quiet();
  const cfg = loadConfig(
    HARDNET,
    [
      ...DATA,
      'VALID.transforms.1.ResizeImage.resize_short=300',
      'validate=False',
      'TRAIN.transforms.3.NormalizeImage.mean=[0.5,0.5,0.5]',
      'pretrained_model=',
      'LEARNING_RATE.params.lr=0.1',
      'print_interval=5', // known key, absent from the file: no warning
      'TRAIN.transforms.-1.ToCHWImage.note=x', // negative index, null params become a map
    ],
    q,
  );
  assert.equal((cfg.VALID!.transforms[1].ResizeImage as Record<string, unknown>).resize_short, 300);
  assert.equal(cfg.validate, false);
  assert.deepEqual(cfg.TRAIN?.transforms[3].NormalizeImage?.mean, [0.5, 0.5, 0.5]);
  assert.equal(cfg.pretrained_model, '');
  assert.equal(cfg.LEARNING_RATE?.params.lr, 0.1);
  assert.equal(cfg.print_interval, 5);
  assert.deepEqual(cfg.TRAIN?.transforms[4], { ToCHWImage: { note: 'x' } });
  assert.equal(q.warnings.length, 1);
  assert.match(q.warnings[0], /TRAIN\.transforms\.-1\.ToCHWImage\.note.*new/);
});

test('-o: a new leaf key warns, a missing intermediate key or a bad index is an error naming the key path', () => {
  const q = quiet();
  loadConfig(HARDNET, [...DATA, 'VALID.my_new_key=1'], q);
  assert.ok(
    q.warnings.some((w) => w.includes('VALID.my_new_key')),
    q.warnings.join('\n'),
  );
  const typo = quiet();
  loadConfig(HARDNET, [...DATA, 'epoch=1'], typo);
  assert.ok(
    typo.warnings.some((w) =>
      /override 'epoch=1': config key epoch is new; adding it \(.*did you mean epochs\?\)/.test(w),
    ),
    typo.warnings.join('\n'),
  );

  assert.match(
    errorOf(() => loadConfig(HARDNET, [...DATA, 'VALID.transfroms.1.ResizeImage.resize_short=300'], quiet())),
    /HarDNet68_best_v2\.yaml: override 'VALID\.transfroms\.1\.ResizeImage\.resize_short=300': config key VALID\.transfroms does not exist.*VALID has: batch_size/,
  );
  assert.match(
    errorOf(() => loadConfig(HARDNET, [...DATA, 'VALID.transforms.9.ResizeImage.resize_short=1'], quiet())),
    /config key VALID\.transforms\.9: index 9 out of range \(the list has 5 entries\)/,
  );
  assert.match(
    errorOf(() => loadConfig(HARDNET, [...DATA, 'VALID.transforms.x.y=1'], quiet())),
    /config key VALID\.transforms\.x: a list index must be an integer/,
  );
  assert.match(
    errorOf(() => loadConfig(HARDNET, [...DATA, 'epochs.x=1'], quiet())),
    /config key epochs is a number/,
  );
  assert.match(
    errorOf(() => loadConfig(HARDNET, ['epochs'], quiet())),
    /override 'epochs': expected KEY=VALUE/,
  );
});

test('validation names the key path of a wrong type or an unknown value', () => {
  assert.ok(
    errorOf(() => loadConfig(HARDNET, [...DATA, 'LEARNING_RATE.function=Cosin'], quiet())).endsWith(
      "HarDNet68_best_v2.yaml: config key LEARNING_RATE.function: unknown schedule 'Cosin'; expected one of Cosine, CosineWarmup, Piecewise, ExponentialWarmup (did you mean Cosine?)",
    ),
  );
  assert.match(
    errorOf(() => loadConfig(HARDNET, [...DATA, 'ARCHITECTURE.name=HarDNet86'], quiet())),
    /config key ARCHITECTURE\.name: unknown architecture 'HarDNet86'; closest valid names: HarDNet85/,
  );
  assert.match(
    errorOf(() => loadConfig(HARDNET, [...DATA, 'classes_num=1'], quiet())),
    /config key classes_num: must be >= 2, got 1/,
  );
  assert.match(
    errorOf(() => loadConfig(HARDNET, [...DATA, 'classes_num=10.5'], quiet())),
    /config key classes_num: must be an integer, got number \(10\.5\)/,
  );
  assert.match(
    errorOf(() => loadConfig(HARDNET, [...DATA, 'classes_num=ten'], quiet())),
    /config key classes_num: must be an integer, got string \("ten"\)/,
  );
  assert.match(
    errorOf(() => loadConfig(HARDNET, [...DATA, 'TRAIN.batch_size=0'], quiet())),
    /config key TRAIN\.batch_size: must be >= 1/,
  );
  assert.match(
    errorOf(() => loadConfig(HARDNET, [...DATA, 'validate=maybe'], quiet())),
    /config key validate: must be True or False/,
  );
  assert.match(
    errorOf(() =>
      loadConfig(HARDNET, [...DATA, 'TRAIN.batch_size=64', 'bn_virtual_batch_size=24'], { ...quiet(), worldSize: 2 }),
    ),
    /config key bn_virtual_batch_size: 24 does not divide the per-worker batch \(TRAIN\.batch_size 64 \/\/ 2 worker\(s\) = 32\)/,
  );
  assert.equal(
    loadConfig(HARDNET, [...DATA, 'TRAIN.batch_size=64', 'bn_virtual_batch_size=32'], { ...quiet(), worldSize: 1 })
      .bn_virtual_batch_size,
    32,
  );
  assert.match(
    errorOf(() =>
      loadConfig(HARDNET, [...DATA, 'TRAIN.batch_size=64', 'bn_virtual_batch_size=1'], { ...quiet(), worldSize: 1 }),
    ),
    /config key bn_virtual_batch_size: must be 0 \(off\) or at least 2/,
  );
  assert.match(
    errorOf(() => loadConfig(HARDNET, [...DATA, 'backend=gpu'], quiet())),
    /config key backend: unknown backend 'gpu'; expected one of auto, tensorflow, wasm, cpu/,
  );
  assert.match(
    errorOf(() => loadConfig(HARDNET, [...DATA, 'manual_gc=sometimes'], quiet())),
    /config key manual_gc/,
  );
  assert.match(
    errorOf(() => loadConfig(HARDNET, [...DATA, 'allreduce_dtype=int8'], quiet())),
    /config key allreduce_dtype: unknown dtype 'int8'/,
  );
  assert.match(
    errorOf(() => loadConfig(HARDNET, [...DATA, 'OPTIMIZER.function=Adam'], quiet())),
    /config key OPTIMIZER\.function: unknown optimizer 'Adam'; expected one of Momentum/,
  );
  assert.match(
    errorOf(() => loadConfig(HARDNET, [...DATA, 'LEARNING_RATE.params.warmup=5'], quiet())),
    /config key LEARNING_RATE\.params\.warmup: unknown parameter; expected lr/,
  );
  assert.match(
    errorOf(() =>
      loadConfig(
        HARDNET,
        [...DATA, 'LEARNING_RATE.function=CosineWarmup', 'LEARNING_RATE.params.warmup_epoch=150'],
        quiet(),
      ),
    ),
    /config key LEARNING_RATE\.params\.warmup_epoch: must be less than epochs \(150\), got 150/,
  );
  assert.match(
    errorOf(() => loadConfig(HARDNET, [...DATA, 'TRAIN.transforms.2=RandFlipImage'], quiet())),
    /config key TRAIN\.transforms\.2: must be a map with exactly one op name, got string/,
  );
  assert.match(
    errorOf(() => loadConfig(HARDNET, [...DATA, 'use_mix=True'], quiet())),
    /config key TRAIN\.mix: use_mix is True/,
  );
});

test('train mode needs LEARNING_RATE and OPTIMIZER; valid mode does not', () => {
  const noLr = editedHardnet((t) => delete t.LEARNING_RATE);
  assert.match(
    errorOf(() => loadConfig(noLr, DATA, quiet())),
    /edited\.yaml: config key LEARNING_RATE: is required in train mode/,
  );
  const noOpt = editedHardnet((t) => delete t.OPTIMIZER);
  assert.match(
    errorOf(() => loadConfig(noOpt, DATA, quiet())),
    /config key OPTIMIZER: is required in train mode/,
  );
  const evalOnly = loadConfig(noOpt, DATA, { ...quiet(), mode: 'valid' });
  assert.equal(evalOnly.mode, 'valid');
  assert.equal(evalOnly.OPTIMIZER, undefined);
  assert.equal(evalOnly.TRAIN, undefined);
  assert.equal(evalOnly.VALID?.batch_size, 64);
});

test('a multi-worker run requires TRAIN.shuffle_seed; a single worker does not', () => {
  const noSeed = editedHardnet((t) => delete t.TRAIN.shuffle_seed);
  assert.equal(loadConfig(noSeed, DATA, quiet()).TRAIN?.shuffle_seed, undefined);
  assert.match(
    errorOf(() => loadConfig(noSeed, DATA, { ...quiet(), worldSize: 2 })),
    /config key TRAIN\.shuffle_seed: is required when training with 2 workers/,
  );
  assert.match(
    errorOf(() => loadConfig(HARDNET, [...DATA, 'TRAIN.batch_size=2'], { ...quiet(), worldSize: 4 })),
    /config key TRAIN\.batch_size: the global batch 2 is smaller than the 4 workers/,
  );
});

test('unknown keys in the file warn with the closest known name; broken YAML names the file', () => {
  const typo = editedHardnet((t) => {
    t.print_intervall = 5;
  });
  const q = quiet();
  loadConfig(typo, DATA, q);
  assert.ok(
    q.warnings.some((w) =>
      /config key print_intervall: unknown key, ignored \(did you mean print_interval\?\)/.test(w),
    ),
    q.warnings.join('\n'),
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
  const bad = path.join(dir, 'broken.yaml');
  fs.writeFileSync(bad, 'mode: train\nTRAIN: [1,\n');
  assert.match(
    errorOf(() => loadConfig(bad, [], quiet())),
    /config .*broken\.yaml is not valid YAML/,
  );
  assert.match(
    errorOf(() => loadConfig(path.join(dir, 'missing.yaml'), [], quiet())),
    /cannot read config .*missing\.yaml: ENOENT/,
  );
});

test('formatConfig prints YAML that saveConfig writes and loadConfig reads back to the same config', () => {
  const cfg: TrainConfig = loadConfig(
    HARDNET,
    [...DATA, 'LEARNING_RATE.function=Piecewise', 'LEARNING_RATE.params.decay_epochs=[30,60,90]'],
    quiet(),
  );
  assert.deepEqual(cfg.LEARNING_RATE, {
    function: 'Piecewise',
    params: { lr: 0.05, decay_epochs: [30, 60, 90], gamma: 0.1 },
  });
  const text = formatConfig(cfg);
  assert.match(text, /^ARCHITECTURE:\n {2}name: HarDNet68$/m);
  assert.match(text, /scale: 1\.\/255\./);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cfg-'));
  const file = saveConfig(cfg, dir);
  assert.equal(file, path.join(dir, 'config.yaml'));
  const q = quiet();
  assert.deepEqual(loadConfig(file, [], q), cfg);
  assert.deepEqual(q.warnings, []);
});
