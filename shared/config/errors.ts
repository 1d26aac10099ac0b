/** The config's one error type: every message names the config's source and the key path (in `-o` syntax). */
export class ConfigError extends Error {}
