// W3C Trace Context (traceparent / tracestate): accepted from the client, created when absent
// or invalid, and propagated to the upstream with the gateway's own span id as the parent.
import { randomFillSync } from 'node:crypto';

export interface TraceContext {
  /** 32 lower-case hex digits. */
  traceId: string;
  /** The gateway's span for this request: 16 hex digits. */
  spanId: string;
  /** The caller's span, when a valid traceparent came in ("" otherwise). */
  parentId: string;
  /** Trace flags, 2 hex digits ("01" sampled). */
  flags: string;
  /** The traceparent header to send upstream. */
  traceparent: string;
  /** Whether the incoming tracestate belongs to this trace and may be passed on. */
  keepTracestate: boolean;
}

// Random ids from a pooled buffer: one getrandom call per 256 ids, not one per request.
const POOL = Buffer.allocUnsafe(4096);
let offset = POOL.length;

function randomHex(bytes: number): string {
  if (offset + bytes > POOL.length) {
    randomFillSync(POOL);
    offset = 0;
  }
  const hex = POOL.toString('hex', offset, offset + bytes);
  offset += bytes;
  return hex;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/** The trace context of one request from its (hostile until checked) traceparent header. */
export function traceContext(header: string | string[] | undefined): TraceContext {
  const spanId = randomHex(8);
  if (typeof header === 'string' && header.length <= 512) {
    const m = TRACEPARENT.exec(header);
    // Version ff is invalid; version 00 has exactly four fields; all-zero ids are invalid.
    if (m && m[1] !== 'ff' && !(m[1] === '00' && m[5] !== undefined) && m[2] !== ZERO_TRACE && m[3] !== ZERO_SPAN) {
      const flags = m[4]!;
      return { traceId: m[2]!, spanId, parentId: m[3]!, flags, traceparent: `00-${m[2]}-${spanId}-${flags}`, keepTracestate: true };
    }
  }
  const traceId = randomHex(16);
  return { traceId, spanId, parentId: '', flags: '01', traceparent: `00-${traceId}-${spanId}-01`, keepTracestate: false };
}
