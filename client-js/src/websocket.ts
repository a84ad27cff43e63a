/** The WebSocket implementation: the platform's (browsers, Node 22+) or the `ws` package. */

export type WebSocketClass = new (url: string, protocols?: string | string[]) => unknown;

/** STOMP sub-protocols offered on the upgrade, best first. */
export const SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

export async function webSocketClass(override?: WebSocketClass): Promise<WebSocketClass> {
  if (override) return override;
  const native = (globalThis as { WebSocket?: WebSocketClass }).WebSocket;
  if (typeof native === 'function') return native;
  const ws = (await import('ws')) as unknown as {
    default?: WebSocketClass;
    WebSocket?: WebSocketClass;
  };
  const found = ws.default ?? ws.WebSocket;
  if (!found) throw new Error('no WebSocket: install the `ws` package');
  return found;
}
