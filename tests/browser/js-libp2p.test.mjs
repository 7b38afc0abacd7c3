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

/** `n` as a postcard varint (little-endian groups of 7 bits). */
function postcardVarint(n) {
  const out = [];
  for (; ; n = Math.floor(n / 0x80)) {
    if (n < 0x80) {
      out.push(n);
      return out;
    }
    out.push((n % 0x80) | 0x80);
  }
}

/**
 * A sync `Hello` listing `count` random document ids, as one length-prefixed
 * frame (u32 little-endian length, then the postcard-encoded message:
 * variant 0, version 3, then the reconciliation query as bytes: negentropy
 * version 0x61, the bound "everything", mode IdList, the count as a
 * big-endian varint, and 32 bytes per id).
 */
function hello(count) {
  const countVarint = [];
  for (let n = count; ; n = Math.floor(n / 0x80)) {
    countVarint.unshift((n % 0x80) | (countVarint.length ? 0x80 : 0));
    if (n < 0x80) break;
  }
  const queryHead = Uint8Array.from([0x61, 0, 0, 2, ...countVarint]);
  const queryLen = queryHead.length + count * 32;
  const head = Uint8Array.from([0, 3, ...postcardVarint(queryLen)]);
  const body = new Uint8Array(head.length + queryLen);
  body.set(head, 0);
  body.set(queryHead, head.length);
  body.set(randomBytes(count * 32), head.length + queryHead.length);
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
  // stranger's Hello is answered as an empty set would answer it (it
  // shares no document with the relay).
  for (let round = 0; round < 3; round++) {
    const stream = await conn.newStream('/synkro/sync/1');
    await writeAll(stream, hello(150_000));
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
