/** The config's error type (shared/errors.ts): every message names the config's source and the key path. */
export { ConfigError } from '../errors.js';
