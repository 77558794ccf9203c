// Every error a client of the gateway can receive, declared once: code, HTTP status, meaning.
// docs/errors.md lists the same table; test/gateway/errors.test.ts keeps the two in step.
import type { ServerResponse } from 'node:http';

export interface GatewayErrorDef {
  status: number;
  message: string;
}

export const GATEWAY_ERRORS = {
  CW_BAD_PATH: { status: 400, message: 'the request path is not acceptable' },
  CW_ROUTE_NOT_FOUND: { status: 404, message: 'no route matches this request' },
  CW_REQUEST_TIMEOUT: { status: 408, message: 'the client was too slow sending the request body' },
  CW_TOO_MANY_HEADERS: { status: 431, message: 'the request has too many header fields' },
  CW_BODY_TOO_LARGE: { status: 413, message: 'the request body is larger than the route accepts' },
  CW_POLICY_ERROR: { status: 500, message: 'a policy failed while checking the request' },
  CW_UPGRADE_NOT_SUPPORTED: { status: 400, message: 'only WebSocket upgrades are passed through' },
  CW_NO_HEALTHY_ENDPOINT: { status: 503, message: 'no healthy endpoint for the upstream' },
  CW_UPSTREAM_POOL_FULL: { status: 503, message: 'every connection to the upstream is busy and too many requests are waiting' },
  CW_UPSTREAM_REFUSED: { status: 502, message: 'the upstream refused the connection' },
  CW_UPSTREAM_RESET: { status: 502, message: 'the upstream closed the connection before answering' },
  CW_UPSTREAM_UNREACHABLE: { status: 502, message: 'the upstream host cannot be reached' },
  CW_UPSTREAM_BAD_RESPONSE: { status: 502, message: 'the upstream sent an invalid HTTP response' },
  CW_UPSTREAM_ERROR: { status: 502, message: 'the upstream request failed' },
  CW_UPSTREAM_TLS_NAME: { status: 502, message: "the upstream's certificate is not valid for its name" },
  CW_UPSTREAM_TLS_UNTRUSTED: { status: 502, message: "the upstream's certificate is not trusted" },
  CW_UPSTREAM_TLS: { status: 502, message: 'the TLS handshake with the upstream failed' },
  CW_BAD_HOST: { status: 400, message: 'the request has no usable host' },
  CW_UPSTREAM_CONNECT_TIMEOUT: { status: 504, message: 'connecting to the upstream timed out' },
  CW_UPSTREAM_TIMEOUT: { status: 504, message: 'the upstream did not answer in time' },
  // The admin listener (gateway/admin.ts).
  CW_ADMIN_UNAUTHORIZED: { status: 401, message: 'admin.token is set: send Authorization: Bearer <token>' },
  CW_ADMIN_BAD_REQUEST: { status: 400, message: 'a query parameter is missing or invalid' },
  CW_ADMIN_UNKNOWN_POLICY: { status: 400, message: 'no rateLimit policy has this name' },
  CW_ADMIN_STORE_UNAVAILABLE: { status: 503, message: 'the rate-limit store could not be read' },
  CW_ADMIN_NOT_FOUND: { status: 404, message: 'no such admin file' },
  CW_DASHBOARD_NOT_BUILT: { status: 503, message: 'the dashboard is not built: run npm run build' },
} as const satisfies Record<string, GatewayErrorDef>;

export type GatewayErrorCode = keyof typeof GATEWAY_ERRORS;

export function errorBody(code: string, message: string, requestId: string): string {
  return JSON.stringify({ error: { code, message, requestId } });
}

/** Write a JSON error response unless headers already went out (then the connection is cut). */
export function sendError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  requestId: string,
  requestIdHeader: string,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(code, message, requestId);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    [requestIdHeader]: requestId,
  });
  res.end(body);
}

/** The raw HTTP/1.1 error response for a socket that is not (yet) an HTTP response: upgrades. */
export function rawErrorResponse(status: number, code: string, message: string, requestId: string, requestIdHeader: string): string {
  const body = errorBody(code, message, requestId);
  const reason = status === 400 ? 'Bad Request' : status === 404 ? 'Not Found' : status === 502 ? 'Bad Gateway' : status === 503 ? 'Service Unavailable' : status === 504 ? 'Gateway Timeout' : 'Error';
  return (
    `HTTP/1.1 ${status} ${reason}\r\n` +
    `content-type: application/json; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\n` +
    `${requestIdHeader}: ${requestId}\r\n` +
    `connection: close\r\n\r\n${body}`
  );
}
