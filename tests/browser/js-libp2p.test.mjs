// A standard js-libp2p peer (Node.js, TCP, Noise, yamux) against the relay:
// large writes on a stream must not cost the peer its connection.
//
// js-libp2p's yamux sends data frames as large as the window the receiver
// grants, and rust-yamux grows a busy stream's window (up to 16 MiB) while
// refusing any frame over 1 MiB, which ended the whole connection
// (`FrameTooLarge`). The relay now grants each stream at most 1 MiB.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startRelay } from './harness.mjs';

// js-libp2p 3 uses Promise.withResolvers (Node.js 22); Debian's Node.js 20
// lacks it, so add it before js-libp2p loads.
Promise.withResolvers ??= function withResolvers() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};
const { createLibp2p } = await import('libp2p');
const { tcp } = await import('@libp2p/tcp');
const { noise } = await import('@chainsafe/libp2p-noise');
const { yamux } = await import('@chainsafe/libp2p-yamux');
const { ping } = await import('@libp2p/ping');
const { multiaddr } = await import('@multiformats/multiaddr');

let relay;
let node;

before(async () => {
  relay = await startRelay();
  node = await createLibp2p({
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { ping: ping() },
  });
});

after(async () => {
  await node?.stop();
  await relay?.stop();
});

/**
 * A sync `Hello` listing `count` random document ids, as one length-prefixed
 * frame (u32 little-endian length, then the postcard-encoded message:
 * variant 0, version 2, the list's length as a varint, then per document
 * its 32-byte id and 16-byte digest).
 */
function hello(count) {
  const varint = [];
  for (let n = count; ; n >>>= 7) {
    if (n < 0x80) {
      varint.push(n);
      break;
    }
    varint.push((n & 0x7f) | 0x80);
  }
  const head = Uint8Array.from([0, 2, ...varint]);
  const body = new Uint8Array(head.length + count * 48);
  body.set(head, 0);
  body.set(randomBytes(count * 48), head.length);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length, true);
  out.set(body, 4);
  return out;
}

/** Write all of `bytes` on `stream`, waiting whenever its buffer is full. */
async function writeAll(stream, bytes, piece = 256 * 1024) {
  for (let at = 0; at < bytes.length; at += piece) {
    if (!stream.send(bytes.subarray(at, at + piece))) await stream.onDrain();
  }
}

test('a js-libp2p peer writes a 4.8 MB Hello at once and keeps its connection', async () => {
  const conn = await node.dial(multiaddr(relay.tcp));
  let closed = false;
  node.addEventListener('connection:close', (e) => {
    if (e.detail.id === conn.id) closed = true;
  });
  const before = await node.services.ping.ping(conn.remoteAddr);
  assert.ok(before >= 0);

  // Three times, so the receiver's window has every chance to grow. A
  // stranger's Hello gets no answer (it shares no document with the relay).
  for (let round = 0; round < 3; round++) {
    const stream = await conn.newStream('/synkro/sync/1');
    await writeAll(stream, hello(100_000));
    await stream.close();
  }

  // The connection is still there and answers.
  for (let i = 0; i < 3; i++) {
    const rtt = await node.services.ping.ping(conn.remoteAddr);
    assert.ok(rtt >= 0, 'ping answered');
  }
  assert.equal(closed, false, 'the connection was not closed');
  assert.equal(conn.status, 'open');
});
