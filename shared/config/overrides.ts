/** `-o KEY=VALUE` overrides, applied to the raw tree as ppcls/utils/config.py does. */
import { ConfigError } from '../errors.js';
import { isMap, parsePythonLiteral } from './literal.js';
import { isKnownPath, TOP_LEVEL_KEYS } from './schema.js';
import { nearSpelling } from '../closest.js';

function listIndex(key: string, list: unknown[], keyPath: string): number {
  if (!/^-?\d+$/.test(key))
    throw new ConfigError(`config key ${keyPath}: a list index must be an integer, got '${key}'`, undefined, keyPath);
  const i = Number(key) < 0 ? list.length + Number(key) : Number(key); // Python's negative indexes
  if (i < 0 || i >= list.length)
    throw new ConfigError(
      `config key ${keyPath}: index ${key} out of range (the list has ${list.length} entries)`,
      undefined,
      keyPath,
    );
  return i;
}

/**
 * Apply one `KEY=VALUE` to the raw tree. Returns the leaf's dotted path when it created a new key.
 * The value is split at the first '=' (PaddleClas rejects a second one; paths in values may contain it).
 */
export function applyOverride(
  tree: Record<string, unknown>,
  spec: string,
  warn: (m: string) => void,
): string | undefined {
  const eq = spec.indexOf('=');
  if (eq <= 0) throw new ConfigError(`override '${spec}': expected KEY=VALUE (e.g. -o TRAIN.batch_size=128)`);
  const parts = spec.slice(0, eq).trim().split('.');
  if (parts.some((p) => p === ''))
    throw new ConfigError(`override '${spec}': empty key segment in '${spec.slice(0, eq)}'`);
  const raw = spec.slice(eq + 1);
  const lit = parsePythonLiteral(raw);
  const value = lit ? lit.value : raw;
  try {
    let node: unknown = tree;
    for (let i = 0; i < parts.length; i++) {
      const keyPath = parts.slice(0, i + 1).join('.');
      const last = i === parts.length - 1;
      if (Array.isArray(node)) {
        const idx = listIndex(parts[i], node, keyPath);
        if (last) {
          node[idx] = value;
          return undefined;
        }
        if (node[idx] === null) node[idx] = {};
        node = node[idx];
      } else if (isMap(node)) {
        const k = parts[i];
        if (last) {
          const isNew = !(k in node);
          node[k] = value;
          if (isNew && !isKnownPath(parts)) {
            // PaddleClas adds a new leaf with a warning; a top-level one that nothing here reads is most often a typo
            const near = parts.length === 1 ? nearSpelling(k, TOP_LEVEL_KEYS) : undefined;
            warn(
              `override '${spec}': config key ${keyPath} is new; adding it` +
                (near ? ` (no key of this trainer is called that; did you mean ${near}?)` : ''),
            );
          }
          return isNew ? keyPath : undefined;
        }
        if (!(k in node)) {
          throw new ConfigError(
            `config key ${keyPath} does not exist, and a new map key is not allowed` +
              ` (${i === 0 ? 'top level' : parts.slice(0, i).join('.')} has: ${Object.keys(node).join(', ') || 'nothing'})`,
          );
        }
        // `- ToCHWImage:` has null params; walking into it makes them a map so `-o ...ToCHWImage.x=1` works
        if (node[k] === null) node[k] = {};
        node = node[k];
      } else {
        throw new ConfigError(`config key ${parts.slice(0, i).join('.')} is a ${describe(node)}, not a map or list`);
      }
    }
  } catch (e) {
    if (e instanceof ConfigError && !e.message.startsWith('override'))
      throw new ConfigError(`override '${spec}': ${e.message}`, undefined, e.key);
    throw e;
  }
  return undefined;
}

export function describe(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (Array.isArray(v)) return 'list';
  if (isMap(v)) return 'map';
  return `${typeof v} (${JSON.stringify(v)})`;
}
