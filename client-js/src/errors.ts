/** Errors the client rejects promises with; `code` tells them apart. */

export type HeraldErrorCode =
  | 'timeout'
  | 'broker-error'
  | 'queue-full'
  | 'connection-lost'
  | 'closed'
  | 'request-failed'
  | 'not-supported'
  | 'api-error';

export class HeraldError extends Error {
  readonly code: HeraldErrorCode;
  /** For `broker-error`: the ERROR frame's headers and body. */
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /** For `api-error`: the HTTP status. */
  readonly status?: number;

  constructor(
    code: HeraldErrorCode,
    message: string,
    frame?: { headers: Record<string, string>; body: string },
    status?: number,
  ) {
    super(message);
    this.name = 'HeraldError';
    this.code = code;
    this.headers = frame?.headers;
    this.body = frame?.body;
    this.status = status;
  }
}
