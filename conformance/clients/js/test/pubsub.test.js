// Publish/subscribe on topics with @stomp/stompjs: patterns, headers, text and binary bodies,
// receipts, unsubscribe. Each test uses its own destinations, so test files may run in
// parallel against one broker.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';

import { sleep, uniqueTopic, withPeers } from '../lib/harness.js';

test('a pattern subscription gets what another client publishes, with receipts', async () => {
  const base = uniqueTopic('pattern');
  await withPeers(['sub', 'pub'], async (sub, pub) => {
    const { subscription, inbox, receiptFrame } = await sub.subscribe(`${base}/prices/*`);
    assert.equal(receiptFrame.command, 'RECEIPT');
    assert.match(receiptFrame.headers['receipt-id'], /^sub-sub-\d+$/);

    const sendReceipt = await pub.publish({ destination: `${base}/prices/IBM`, body: 'IBM 142.50' });
    assert.equal(sendReceipt.command, 'RECEIPT');
    assert.match(sendReceipt.headers['receipt-id'], /^pub-send-\d+$/);

    const message = await inbox.next();
    assert.equal(message.command, 'MESSAGE');
    assert.equal(message.body, 'IBM 142.50');
    assert.equal(message.headers.destination, `${base}/prices/IBM`);
    assert.equal(message.headers.subscription, subscription.id);
    assert.ok(message.headers['message-id'], 'MESSAGE has a message-id');
  });
});

test('`*` matches one segment and `**` any number of segments', async () => {
  const base = uniqueTopic('wildcards');
  await withPeers(['sub', 'pub'], async (sub, pub) => {
    const single = await sub.subscribe(`${base}/prices/*`);
    const deep = await sub.subscribe(`${base}/feeds/**`);

    // Not matched by `prices/*` (two segments below prices).
    await pub.publish({ destination: `${base}/prices/IBM/bid`, body: 'too deep' });
    await pub.publish({ destination: `${base}/feeds/a/b/c`, body: 'deep' });
    await pub.publish({ destination: `${base}/feeds/x`, body: 'one level' });
    // Published last: once it arrived, everything published before it has been routed.
    await pub.publish({ destination: `${base}/prices/MSFT`, body: 'MSFT' });

    const first = await single.inbox.next();
    assert.equal(first.headers.destination, `${base}/prices/MSFT`);
    assert.equal(first.body, 'MSFT');
    assert.equal(single.inbox.pending, 0, 'nothing else matched prices/*');

    const deepBodies = [(await deep.inbox.next()).body, (await deep.inbox.next()).body];
    assert.deepEqual(deepBodies, ['deep', 'one level']);
    assert.equal(deep.inbox.pending, 0);
  });
});

test('custom headers with colons, spaces and escapes arrive unchanged', async () => {
  const base = uniqueTopic('headers');
  const destination = `${base}/quotes/IBM`;
  const custom = {
    'x-colons': 'a:b:c',
    'x-spaces': 'two  spaces and more',
    'x-url': 'http://example.test:8080/path?q=1&r=two words',
    'x-escapes': 'line one\nline two\\with backslash\r\nand CR LF',
    'x-unicode': 'héllo wörld ✓',
    'content-type': 'text/plain;charset=utf-8',
  };
  const body = 'Grüße — a UTF-8 body: ✓\nsecond line';
  await withPeers(['sub', 'pub'], async (sub, pub) => {
    const { inbox } = await sub.subscribe(`${base}/quotes/*`);
    await pub.publish({ destination, body, headers: custom });

    const message = await inbox.next();
    assert.equal(message.body, body);
    for (const [name, value] of Object.entries(custom)) {
      assert.equal(message.headers[name], value, `header ${name}`);
    }
    assert.equal(
      message.headers['content-length'],
      String(Buffer.byteLength(body, 'utf8')),
      'content-length is the UTF-8 byte length',
    );
  });
});

test('a binary body with NUL bytes arrives byte for byte', async () => {
  const base = uniqueTopic('binary');
  const bytes = Uint8Array.from([0, 1, 2, 0, 0, 255, 10, 13, 0, 92, 58, 0]);
  await withPeers(['sub', 'pub'], async (sub, pub) => {
    const { inbox } = await sub.subscribe(`${base}/blobs/*`);
    await pub.publish({
      destination: `${base}/blobs/one`,
      binaryBody: bytes,
      headers: { 'content-type': 'application/octet-stream' },
    });

    const message = await inbox.next();
    assert.deepEqual(Buffer.from(message.binaryBody), Buffer.from(bytes));
    assert.equal(message.headers['content-length'], String(bytes.length));
    assert.equal(message.headers['content-type'], 'application/octet-stream');
  });
});

test('a text body containing NUL arrives whole (content-length framing)', async () => {
  const base = uniqueTopic('text-nul');
  const body = 'before\0after\0';
  await withPeers(['sub', 'pub'], async (sub, pub) => {
    const { inbox } = await sub.subscribe(`${base}/*`);
    await pub.publish({ destination: `${base}/x`, body });
    const message = await inbox.next();
    assert.equal(message.body, body);
  });
});

test('a text body sent without content-length is delivered', async () => {
  const base = uniqueTopic('no-length');
  const body = 'framed by the NUL terminator only ✓';
  await withPeers(['sub', 'pub'], async (sub, pub) => {
    const { inbox } = await sub.subscribe(`${base}/*`);
    await pub.publish({ destination: `${base}/x`, body, skipContentLengthHeader: true });
    const message = await inbox.next();
    assert.equal(message.body, body);
  });
});

test('a 256 KiB binary body arrives intact', async () => {
  const base = uniqueTopic('large');
  const bytes = new Uint8Array(randomBytes(256 * 1024));
  bytes[0] = 0;
  bytes[bytes.length - 1] = 0;
  await withPeers(['sub', 'pub'], async (sub, pub) => {
    const { inbox } = await sub.subscribe(`${base}/**`);
    await pub.publish({ destination: `${base}/big`, binaryBody: bytes });
    const message = await inbox.next();
    assert.equal(message.binaryBody.length, bytes.length);
    assert.ok(Buffer.from(message.binaryBody).equals(Buffer.from(bytes)), 'bytes differ');
  });
});

test('an empty body is delivered as an empty body', async () => {
  const base = uniqueTopic('empty');
  await withPeers(['sub', 'pub'], async (sub, pub) => {
    const { inbox } = await sub.subscribe(`${base}/*`);
    await pub.publish({ destination: `${base}/nothing`, body: '' });
    const message = await inbox.next();
    assert.equal(message.body, '');
    assert.equal(message.binaryBody.length, 0);
  });
});

test('every matching subscription gets its own copy', async () => {
  const base = uniqueTopic('fanout');
  await withPeers(['a', 'b', 'pub'], async (a, b, pub) => {
    const exact = await a.subscribe(`${base}/news/sport`);
    const pattern = await a.subscribe(`${base}/news/*`);
    const other = await b.subscribe(`${base}/**`);
    const own = await pub.subscribe(`${base}/news/sport`);

    await pub.publish({ destination: `${base}/news/sport`, body: 'goal' });

    for (const [name, sub] of [
      ['exact', exact],
      ['pattern', pattern],
      ['other client', other],
      ['publisher itself', own],
    ]) {
      const message = await sub.inbox.next();
      assert.equal(message.body, 'goal', name);
      assert.equal(message.headers.subscription, sub.subscription.id, `${name} subscription id`);
    }
  });
});

test('an application-chosen subscription id is used in MESSAGE frames', async () => {
  const base = uniqueTopic('sub-id');
  await withPeers(['sub', 'pub'], async (sub, pub) => {
    const { subscription, inbox } = await sub.subscribe(`${base}/*`, { id: 'my-sub-7' });
    assert.equal(subscription.id, 'my-sub-7');
    await pub.publish({ destination: `${base}/x`, body: 'hi' });
    const message = await inbox.next();
    assert.equal(message.headers.subscription, 'my-sub-7');
  });
});

test('messages from one publisher arrive in publish order', async () => {
  const base = uniqueTopic('order');
  const count = 200;
  await withPeers(['sub', 'pub'], async (sub, pub) => {
    const { inbox } = await sub.subscribe(`${base}/seq`);
    for (let i = 0; i < count - 1; i += 1) {
      pub.client.publish({ destination: `${base}/seq`, body: String(i) });
    }
    await pub.publish({ destination: `${base}/seq`, body: String(count - 1) });
    const received = [];
    for (let i = 0; i < count; i += 1) {
      received.push(Number((await inbox.next()).body));
    }
    assert.deepEqual(
      received,
      Array.from({ length: count }, (_, i) => i),
    );
  });
});

test('after UNSUBSCRIBE (with receipt) nothing more arrives on that subscription', async () => {
  const base = uniqueTopic('unsubscribe');
  await withPeers(['sub', 'pub'], async (sub, pub) => {
    const gone = await sub.subscribe(`${base}/gone/*`);
    const kept = await sub.subscribe(`${base}/kept/*`);

    // Both subscriptions work before the UNSUBSCRIBE.
    await pub.publish({ destination: `${base}/gone/1`, body: 'before' });
    assert.equal((await gone.inbox.next()).body, 'before');

    const receipt = await sub.unsubscribe(gone.subscription);
    assert.equal(receipt.command, 'RECEIPT');

    // The barrier: the second publish is routed after the first, so once it arrived the
    // first one would have arrived too had the subscription still existed.
    await pub.publish({ destination: `${base}/gone/2`, body: 'after' });
    await pub.publish({ destination: `${base}/kept/1`, body: 'barrier' });
    assert.equal((await kept.inbox.next()).body, 'barrier');
    // A little grace for a message that would be racing on another path.
    await sleep(100);
    // stompjs drops the callback on unsubscribe, so a stray MESSAGE lands in onUnhandledMessage.
    assert.equal(gone.inbox.pending, 0, 'a message arrived after UNSUBSCRIBE');
    assert.deepEqual(
      sub.unhandled.map(m => `${m.headers.destination}: ${m.body}`),
      [],
      'MESSAGEs for the removed subscription',
    );
    assert.equal(sub.client.connected, true);
  });
});
