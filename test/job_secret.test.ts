/** The job secret made without ZeroMQ (shared/job_secret.ts): Z85 as RFC 32 says, keys that real CURVE accepts. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as zmq from 'zeromq';
import { curveKeyPair, makeJobSecret, validateJobSecret, z85Encode } from '../shared/job_secret.js';

test('z85 encodes the RFC 32 test vector, and keys are 40 characters that validateJobSecret accepts', () => {
  assert.equal(z85Encode(Uint8Array.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b])), 'HelloWorld');
  assert.throws(() => z85Encode(new Uint8Array(3)), RangeError);
  const a = curveKeyPair();
  const b = curveKeyPair();
  assert.equal(a.publicKey.length, 40);
  assert.notEqual(a.secretKey, b.secretKey);
  validateJobSecret(makeJobSecret('j'), 'test');
});

test('keys made with node:crypto complete a CURVE handshake; a client with other keys gets nothing through', async () => {
  const { curve } = makeJobSecret('handshake');
  const server = new zmq.Pull({
    curveServer: true,
    curveSecretKey: curve.serverSecretKey,
    curvePublicKey: curve.serverPublicKey,
  });
  await server.bind('tcp://127.0.0.1:*');
  const endpoint = server.lastEndpoint!;
  const client = new zmq.Push({
    curveServerKey: curve.serverPublicKey,
    curvePublicKey: curve.clientPublicKey,
    curveSecretKey: curve.clientSecretKey,
    linger: 0,
  });
  client.connect(endpoint);
  await client.send('hello');
  const [msg] = await server.receive();
  assert.equal(msg.toString(), 'hello');

  // a client that does not know the server's public key cannot complete the handshake
  const stranger = curveKeyPair();
  const other = makeJobSecret('other').curve;
  const intruder = new zmq.Push({
    curveServerKey: other.serverPublicKey,
    curvePublicKey: stranger.publicKey,
    curveSecretKey: stranger.secretKey,
    sendTimeout: 0,
    linger: 0,
  });
  intruder.connect(endpoint);
  await intruder.send('injected').catch(() => {});
  server.receiveTimeout = 500;
  await assert.rejects(server.receive(), /timed out|Socket temporarily unavailable/i);
  intruder.close();
  client.close();
  server.close();
});
