/** Message bodies: what a publish sends and what a handler receives, by content type. */

import type { IMessage } from '@stomp/stompjs';

export type Body = string | Uint8Array | ArrayBuffer | unknown;

export interface Encoded {
  body?: string;
  binaryBody?: Uint8Array;
  headers: Record<string, string>;
}

const JSON_TYPE = 'application/json';

/**
 * A string is sent as it is; bytes as a binary body (`application/octet-stream` unless the
 * headers name a type); anything else as JSON (`application/json`).
 */
export function encodeBody(body: Body, headers: Record<string, string> = {}): Encoded {
  const out = { ...headers };
  const hasType = Object.keys(out).some(k => k.toLowerCase() === 'content-type');
  if (typeof body === 'string') {
    return { body, headers: out };
  }
  if (body === undefined) {
    return { body: '', headers: out };
  }
  if (body instanceof Uint8Array || body instanceof ArrayBuffer) {
    if (!hasType) out['content-type'] = 'application/octet-stream';
    return { binaryBody: body instanceof Uint8Array ? body : new Uint8Array(body), headers: out };
  }
  if (!hasType) out['content-type'] = JSON_TYPE;
  return { body: JSON.stringify(body), headers: out };
}

/**
 * The body as its content type says: parsed JSON for `application/json` (the text if it does
 * not parse), a string for `text/*` or no type, bytes for anything else.
 */
export function decodeBody(message: IMessage): unknown {
  const type = (message.headers['content-type'] ?? '').toLowerCase();
  if (type.startsWith(JSON_TYPE)) {
    try {
      return JSON.parse(message.body);
    } catch {
      return message.body;
    }
  }
  if (type === '' || type.startsWith('text/')) {
    return message.body;
  }
  return message.binaryBody;
}
