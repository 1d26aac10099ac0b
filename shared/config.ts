/**
 * PaddleClas 2.0 configs: YAML file + `-o KEY=VALUE` overrides -> one validated, typed TrainConfig.
 *
 * Semantics follow ppcls/utils/config.py (../shared/reference/paddleclas.md, "Config file and -o overrides"):
 * - the YAML is read as PyYAML's SafeLoader reads it (YAML 1.1: `True`, `yes`, `1_000`), then every string that
 *   is a Python literal becomes that value (ast.literal_eval: "0.1", "True", "[1, 2]"); anything else, like
 *   "1./255.", stays a string and is evaluated where it is used (evalScale);
 * - `-o a.b.1.c=v` walks maps by key and lists by index; a new leaf key is added with a warning, a missing
 *   intermediate key is an error.
 * Validation happens here, once, before any worker trains: every error names the key path (in `-o` syntax, so
 * the user can paste it into an override) and the config's source.
 */
export * from './config/schema.js';
export { evalScale, parsePythonLiteral } from './config/literal.js';
export { applyOverride } from './config/overrides.js';
export { formatConfig, loadConfig, quickstartConfigPath, saveConfig } from './config/load.js';
