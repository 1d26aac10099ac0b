/**
 * The job secret's keys and shape, for the launcher that makes or reads one and the workers that check it
 * (worker/collectives/secret.ts reads it from the inherited fd; the contract is described there).
 *
 * The keys are ZeroMQ CURVE keys: Curve25519 key pairs, Z85-encoded (ZeroMQ RFC 32). They are made here with
 * node:crypto's X25519, which is the same curve and the same key format as libsodium's crypto_box keys that
 * libzmq uses, so the launcher needs no ZeroMQ (nor any worker code) to make a secret; a test checks that they
 * complete a real CURVE handshake.
 */
import { generateKeyPairSync } from 'node:crypto';
import type { JobSecret } from './env.js';
import { UsageError } from './errors.js';

export type { JobSecret } from './env.js';

const Z85 = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';

/** Z85 (ZeroMQ RFC 32): 4 bytes -> 5 characters, big-endian base 85; the length must be a multiple of 4. */
export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0) throw new RangeError(`z85: ${bytes.length} bytes is not a multiple of 4`);
  let out = '';
  for (let i = 0; i < bytes.length; i += 4) {
    let v = ((bytes[i] << 24) | (bytes[i + 1] << 16) | (bytes[i + 2] << 8) | bytes[i + 3]) >>> 0;
    let block = '';
    for (let k = 0; k < 5; k++) {
      block = Z85[v % 85] + block;
      v = Math.floor(v / 85);
    }
    out += block;
  }
  return out;
}

/** A CURVE key pair: the raw 32-byte X25519 keys, Z85-encoded (40 characters each). */
export function curveKeyPair(): { publicKey: string; secretKey: string } {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  const raw = (jwk: { x?: string; d?: string }, k: 'x' | 'd') => Buffer.from(jwk[k]!, 'base64url');
  return {
    publicKey: z85Encode(raw(publicKey.export({ format: 'jwk' }), 'x')),
    secretKey: z85Encode(raw(privateKey.export({ format: 'jwk' }), 'd')),
  };
}

/** A job secret that cannot be used (never quoting the key material). */
export class SecretError extends UsageError {}

/** Launcher side: fresh CURVE key pairs for one job. */
export function makeJobSecret(jobId: string): JobSecret {
  const server = curveKeyPair();
  const client = curveKeyPair();
  return {
    jobId,
    curve: {
      serverPublicKey: server.publicKey,
      serverSecretKey: server.secretKey,
      clientPublicKey: client.publicKey,
      clientSecretKey: client.secretKey,
    },
  };
}

const Z85_KEY = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

/** Check the shape of a parsed secret; `where` names its origin in errors (never the key material). */
export function validateJobSecret(value: unknown, where: string): JobSecret {
  const v = value as Partial<JobSecret> | null;
  if (
    v === null ||
    typeof v !== 'object' ||
    typeof v.jobId !== 'string' ||
    v.jobId === '' ||
    typeof v.curve !== 'object' ||
    v.curve === null
  ) {
    throw new SecretError(`job secret from ${where} is not a {jobId, curve} object`);
  }
  for (const key of ['serverPublicKey', 'serverSecretKey', 'clientPublicKey', 'clientSecretKey'] as const) {
    const k = (v.curve as Record<string, unknown>)[key];
    if (typeof k !== 'string' || !Z85_KEY.test(k))
      throw new SecretError(`job secret from ${where}: curve.${key} is not a 40-character z85 key`);
  }
  return v as JobSecret;
}
