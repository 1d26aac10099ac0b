/**
 * A ZAP handler (ZeroMQ RFC 27): libzmq asks it about every incoming CURVE or PLAIN connection and, without one,
 * accepts anybody who completes the handshake. For CURVE that means anyone who knows the server public key,
 * whatever client key they bring, so the handler admits only the job's client public key(s); for PLAIN it checks
 * the credentials derived from the job secret. One handler per process (the inproc address is fixed per context);
 * each bound group registers its domain and what it expects.
 *
 * Why PLAIN exists here at all: CURVE encrypts every byte, which makes a stream several times slower than a plain
 * one (docs/bench_allreduce.md) and alone would put a socket all-reduce far below gloo. On one host (ipc:// in a
 * 0700 directory) nobody can sniff the password, so authentication is enough; across hosts (tcp://) CURVE stays
 * the default.
 */
import { createHash } from 'node:crypto';
import * as zmq from 'zeromq';
import type { JobSecret } from '../../shared/env.js';
import { CollectiveError } from '../../shared/errors.js';
import { z85Encode } from '../../shared/job_secret.js';

const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';

interface PlainCredentials {
  username: string;
  password: string;
}
export type ZapExpectation =
  | ({ mechanism: 'PLAIN' } & PlainCredentials)
  /** z85-encoded client public keys admitted */
  | { mechanism: 'CURVE'; clientPublicKeys: string[] };

interface Domain {
  mechanism: 'PLAIN' | 'CURVE';
  check: (credentials: Buffer[]) => boolean;
  refs: number;
  key: string;
}

const domains = new Map<string, Domain>();
let handler: zmq.Reply | undefined;
let starting: Promise<void> | undefined;

/** The PLAIN credentials of a job: never the key itself, a hash of it (so a leak does not reveal the CURVE key). */
export function plainCredentials(secret: JobSecret): PlainCredentials {
  const password = createHash('sha256')
    .update(`hardnet-plain\0${secret.jobId}\0${secret.curve.serverSecretKey}`)
    .digest('base64');
  return { username: secret.jobId, password };
}

/** The ZAP domain of a job's sockets: two groups of one job id with different secrets never share one. */
export function zapDomainOf(secret: JobSecret): string {
  const server = createHash('sha256').update(secret.curve.serverPublicKey).digest('hex');
  return `hardnet-${secret.jobId}-${server.slice(0, 12)}`;
}

function expectationOf(e: ZapExpectation): Omit<Domain, 'refs'> {
  if (e.mechanism === 'PLAIN') {
    return {
      mechanism: 'PLAIN',
      key: `PLAIN\0${e.username}\0${e.password}`,
      check: ([user, pass]) => user?.toString('utf8') === e.username && pass?.toString('utf8') === e.password,
    };
  }
  // ZAP hands the client's key over as its 32 raw bytes; the secret holds keys in Z85
  return {
    mechanism: 'CURVE',
    key: `CURVE\0${e.clientPublicKeys.join('\0')}`,
    check: ([key]) => key !== undefined && key.length === 32 && e.clientPublicKeys.includes(z85Encode(key)),
  };
}

async function serve(sock: zmq.Reply): Promise<void> {
  try {
    for await (const frames of sock) {
      // version, request id, domain, address, identity, mechanism, credentials...
      const version = frames[0]?.toString('utf8');
      const domain = frames[2]?.toString('utf8') ?? '';
      const mechanism = frames[5]?.toString('utf8');
      const want = domains.get(domain);
      const ok = version === '1.0' && want !== undefined && mechanism === want.mechanism && want.check(frames.slice(6));
      await sock.send([
        '1.0',
        frames[1] ?? '',
        ok ? '200' : '400',
        ok ? 'OK' : 'not a member of this job',
        ok ? domain : '',
        '',
      ]);
    }
  } catch {
    /* the handler socket was closed with its last domain */
  }
}

/**
 * Two registrations of one domain in one process that disagree on who is admitted. Domains are named after the
 * job secret (zapDomainOf), so only a bug in the caller gets here: an internal error, not one of the user's.
 */
export class ZapDomainConflictError extends Error {
  override name = 'ZapDomainConflictError';
}

/**
 * Start the process's ZAP handler if needed and admit on sockets of `domain` only connections that meet `expect`.
 * Call before binding: a socket bound without a handler in place admits everybody.
 */
export async function registerZapDomain(domain: string, expect: ZapExpectation): Promise<void> {
  const e = expectationOf(expect);
  const had = domains.get(domain);
  if (had !== undefined && had.key !== e.key)
    throw new ZapDomainConflictError(`ZAP domain ${domain} is already registered with other credentials`);
  domains.set(domain, { ...e, refs: (had?.refs ?? 0) + 1 });
  if (handler === undefined) {
    const sock = new zmq.Reply({ linger: 0 });
    handler = sock;
    starting = bindHandler(sock).then(
      () => {
        void serve(sock);
      },
      (err: unknown) => {
        // a later registration starts over instead of awaiting this failure forever
        if (handler === sock) {
          handler = undefined;
          starting = undefined;
        }
        sock.close();
        throw err;
      },
    );
  }
  try {
    await starting;
  } catch (err) {
    unregisterZapDomain(domain);
    throw new CollectiveError(`cannot start the ZAP handler at ${ZAP_ENDPOINT}: ${(err as Error).message}`);
  }
}

/**
 * zmq_close returns before libzmq's reaper thread has released the socket's inproc name, so a handler closed with
 * the last domain can still hold ZAP_ENDPOINT when the next group registers a moment later (seen in CI: a failed
 * bind followed at once by another group). That is the only way this bind finds the name taken in our own
 * context, so it waits for the release, bounded.
 */
async function bindHandler(sock: zmq.Reply): Promise<void> {
  const deadline = Date.now() + 2000;
  for (;;) {
    try {
      await sock.bind(ZAP_ENDPOINT);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

export function unregisterZapDomain(domain: string): void {
  const d = domains.get(domain);
  if (d === undefined) return;
  if (--d.refs > 0) return;
  domains.delete(domain);
  if (domains.size === 0 && handler !== undefined) {
    handler.close();
    handler = undefined;
    starting = undefined;
  }
}
