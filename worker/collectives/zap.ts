/**
 * A ZAP handler (ZeroMQ RFC 27) that checks PLAIN credentials: libzmq asks it about every incoming PLAIN
 * connection and, without one, would accept anybody. One handler per process (the inproc address is fixed per
 * context); each bound group registers its domain and expected credentials.
 *
 * Why PLAIN exists here at all: CURVE encrypts every byte, and measured on this 2-core box a CURVE stream moves
 * 0.5 GB/s against 3.9 GB/s without it, which alone would put all-reduce far below gloo. On one host (ipc://
 * in a 0700 directory) nobody can sniff the password, so authentication is enough; across hosts (tcp://)
 * CURVE stays the default.
 */
import { createHash } from 'node:crypto';
import * as zmq from 'zeromq';
import type { JobSecret } from '../../shared/env.js';

const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';

interface Expected { username: string; password: string }

const domains = new Map<string, Expected>();
let handler: zmq.Reply | undefined;
let starting: Promise<void> | undefined;

/** The PLAIN credentials of a job: never the key itself, a hash of it (so a leak does not reveal the CURVE key). */
export function plainCredentials(secret: JobSecret): Expected {
  const password = createHash('sha256').update(`hardnet-plain\0${secret.jobId}\0${secret.curve.serverSecretKey}`).digest('base64');
  return { username: secret.jobId, password };
}

async function serve(sock: zmq.Reply): Promise<void> {
  try {
    for await (const frames of sock) {
      const [version, requestId, domain, , , mechanism, username, password] = frames.map((f) => f.toString('utf8'));
      const want = domains.get(domain);
      const ok = version === '1.0' && mechanism === 'PLAIN' && want !== undefined && username === want.username && password === want.password;
      await sock.send(['1.0', frames[1] ?? requestId, ok ? '200' : '400', ok ? 'OK' : 'wrong job credentials', ok ? username : '', '']);
    }
  } catch { /* the handler socket was closed with its last domain */ }
}

/** Start the process's ZAP handler if needed and expect `creds` on connections to sockets of `domain`. */
export async function registerZapDomain(domain: string, creds: Expected): Promise<void> {
  domains.set(domain, creds);
  if (handler === undefined) {
    const sock = new zmq.Reply({ linger: 0 });
    handler = sock;
    starting = sock.bind(ZAP_ENDPOINT).then(() => { void serve(sock); });
  }
  await starting;
}

export function unregisterZapDomain(domain: string): void {
  domains.delete(domain);
  if (domains.size === 0 && handler !== undefined) {
    handler.close();
    handler = undefined;
    starting = undefined;
  }
}
