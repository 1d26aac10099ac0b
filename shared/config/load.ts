/** Load and save: YAML file + overrides -> validated TrainConfig; the effective config printed and saved. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { dump, load, YAML11_SCHEMA } from 'js-yaml';
import { ConfigError } from '../errors.js';
import { isMap, typeLiterals } from './literal.js';
import { applyOverride, describe } from './overrides.js';
import type { LoadOptions, TrainConfig, TrainingConfig } from './schema.js';
import { validate } from './validate.js';

/** configs/quickstart.yaml of this package, found from both the source tree and dist/. */
export function quickstartConfigPath(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const up of ['../..', '../../..']) {
    const p = path.resolve(here, up, 'configs', 'quickstart.yaml');
    if (fs.existsSync(p)) return p;
  }
  throw new ConfigError(
    `the built-in quickstart config configs/quickstart.yaml is missing from the package (looked next to ${here})`,
  );
}

/** aliases per config file: PaddleClas configs use none or a few */
const MAX_YAML_ALIASES = 256;
/** values in a config once its aliases are expanded: a real config has a few hundred */
const MAX_YAML_NODES = 100_000;

/**
 * js-yaml resolves an alias to the same object, so loading is cheap, but everything that walks the tree afterwards
 * (literal typing, overrides, printing the effective config) expands it: nine levels of nine aliases are 9^9
 * values ("billion laughs"). Count the expanded tree, stopping at the cap, so such a file fails here in
 * milliseconds.
 */
function assertYamlExpandsBounded(doc: unknown, source: string): void {
  let nodes = 0;
  const stack: unknown[] = [doc];
  while (stack.length > 0) {
    const v = stack.pop();
    if (++nodes > MAX_YAML_NODES) {
      throw new ConfigError(
        `config ${source}: expands to more than ${MAX_YAML_NODES} values through its YAML aliases (*name), far more than any config has (a billion-laughs file?)`,
        source,
      );
    }
    if (Array.isArray(v)) for (const x of v) stack.push(x);
    else if (v !== null && typeof v === 'object' && !(v instanceof Date))
      for (const x of Object.values(v)) stack.push(x);
  }
}

/**
 * Load a PaddleClas YAML config (undefined: the built-in quickstart), apply `-o KEY=VALUE` overrides, validate.
 * Throws ConfigError naming the source and the key path. With `mode: 'train'` the result is a TrainingConfig:
 * validate() fails on a missing LEARNING_RATE, OPTIMIZER or TRAIN in train mode, so none of them is optional.
 */
export function loadConfig(
  file: string | undefined,
  overrides: string[],
  opts: LoadOptions & { mode: 'train' },
): TrainingConfig;
export function loadConfig(file: string | undefined, overrides: string[], opts?: LoadOptions): TrainConfig;
export function loadConfig(file: string | undefined, overrides: string[], opts: LoadOptions = {}): TrainConfig {
  const warn = opts.warn ?? ((m: string) => process.stderr.write(`warning: ${m}\n`));
  const source = file ?? quickstartConfigPath();
  let text: string;
  try {
    text = fs.readFileSync(source, 'utf8');
  } catch (e) {
    throw new ConfigError(
      `cannot read config ${source}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      source,
    );
  }
  let doc: unknown;
  try {
    doc = load(text, { schema: YAML11_SCHEMA, filename: source, maxAliases: MAX_YAML_ALIASES });
  } catch (e) {
    const msg = (e as Error).message;
    if (/alias/i.test(msg) && /max|limit|exceed/i.test(msg))
      throw new ConfigError(
        `config ${source}: more than ${MAX_YAML_ALIASES} YAML aliases (*name); a PaddleClas config needs a handful`,
        source,
      );
    throw new ConfigError(`config ${source} is not valid YAML: ${msg}`, source);
  }
  assertYamlExpandsBounded(doc, source);
  if (!isMap(doc)) throw new ConfigError(`config ${source} must be a YAML map of keys, got ${describe(doc)}`, source);
  const tree = typeLiterals(doc) as Record<string, unknown>;
  const added = new Set<string>();
  for (const o of overrides) {
    try {
      const created = applyOverride(tree, o, warn);
      if (created) added.add(created);
    } catch (e) {
      throw e instanceof ConfigError ? new ConfigError(`${source}: ${e.message}`, source, e.key) : e;
    }
  }
  return validate(tree, source, opts, added, warn);
}

/** The effective config as YAML, printed once at the start of a run. */
export function formatConfig(cfg: TrainConfig): string {
  return dump(cfg, { schema: YAML11_SCHEMA, noRefs: true, lineWidth: 120 });
}

/** Write the effective config to `<dir>/config.yaml` (loadable again with loadConfig); returns the path. */
export function saveConfig(cfg: TrainConfig, dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(file, formatConfig(cfg));
  return file;
}
