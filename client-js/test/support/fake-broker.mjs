// An in-process STOMP broker behind a fake WebSocket class, for unit tests of the client's
// own logic (ordering after a reconnect, request/reply) without a network. It records every
// frame each connection sent; topics match exactly, `/user/<name>/…` reaches the sessions
// subscribed to `/user/…`. Not a Herald: the real broker is in the integration tests.

const OPEN = 1;
const CLOSED = 3;

function parse(text) {
  const [head, ...rest] = text.split('\n\n');
  const [command, ...lines] = head.replace(/^\n+/, '').split('\n');
  const headers = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0 && !(line.slice(0, colon) in headers))
      headers[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return { command, headers, body: rest.join('\n\n') };
}

function frame(command, headers, body = '') {
  const lines = Object.entries(headers).map(([k, v]) => `${k}:${v}`);
  return `${command}\n${lines.join('\n')}\n\n${body}\0`;
}

export class FakeBroker {
  connections = [];
  accepting = true;
  #sessions = 0;
  #messages = 0;

  /** The class to pass as the client's `WebSocket` option. */
  get WebSocket() {
    const broker = this;
    return class FakeWebSocket {
      readyState = 0;
      protocol = 'v12.stomp';
      binaryType = 'arraybuffer';
      constructor(url) {
        this.url = url;
        this.frames = [];
        this.subscriptions = new Map();
        broker.connections.push(this);
        queueMicrotask(() => (broker.accepting ? this.#open() : this.#close(1006)));
      }
      #open() {
        this.readyState = OPEN;
        this.onopen?.({});
      }
      #close(code) {
        if (this.readyState === CLOSED) return;
        this.readyState = CLOSED;
        this.onclose?.({ code, reason: '', wasClean: code === 1000 });
      }
      close() {
        queueMicrotask(() => this.#close(1000));
      }
      terminate() {
        this.#close(1006);
      }
      /** The broker side drops the connection. */
      drop() {
        this.#close(1006);
      }
      deliver(text) {
        if (this.readyState === OPEN) queueMicrotask(() => this.onmessage?.({ data: text }));
      }
      send(data) {
        for (const raw of String(data).split('\0')) {
          if (raw.trim() !== '') broker.#handle(this, parse(raw));
        }
      }
    };
  }

  /** Frames (command and headers) connection `i` sent. */
  sent(i) {
    return this.connections[i].frames;
  }

  get current() {
    return this.connections.at(-1);
  }

  #handle(socket, f) {
    socket.frames.push(f);
    if (f.command === 'CONNECT' || f.command === 'STOMP') {
      socket.session = `fake-${this.#sessions++}`;
      socket.deliver(
        frame('CONNECTED', { version: '1.2', 'heart-beat': '0,0', session: socket.session }),
      );
      return;
    }
    if (f.command === 'SUBSCRIBE') socket.subscriptions.set(f.headers.id, f.headers.destination);
    if (f.command === 'UNSUBSCRIBE') socket.subscriptions.delete(f.headers.id);
    if (f.command === 'SEND') this.#route(f);
    if (f.headers.receipt !== undefined)
      socket.deliver(frame('RECEIPT', { 'receipt-id': f.headers.receipt }));
  }

  #route(f) {
    const user = f.headers.destination.match(/^\/user\/([^/]+)(\/.*)$/);
    for (const socket of this.connections) {
      if (socket.readyState !== OPEN) continue;
      if (user && user[1] !== socket.session) continue;
      const wanted = user ? `/user${user[2]}` : f.headers.destination;
      for (const [id, destination] of socket.subscriptions) {
        if (destination !== wanted) continue;
        const { receipt: _, destination: __, ...headers } = f.headers;
        socket.deliver(
          frame(
            'MESSAGE',
            { ...headers, destination, subscription: id, 'message-id': `m${this.#messages++}` },
            f.body,
          ),
        );
      }
    }
  }
}
