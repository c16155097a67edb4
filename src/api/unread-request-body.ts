/**
 * What happens to the part of a request body nobody reads. connect stops reading a body as soon
 * as it knows the answer (an envelope larger than `readMaxBytes`, a refused credential, an
 * unsupported content type) by returning from its async iterator over the Node request, and a
 * Node stream's iterator destroys the stream on return. Node's HTTP/1.1 parser then keeps
 * pushing the rest of the body into the destroyed request, the push answers "no more", the
 * parser stops reading the socket, and nothing ever resumes it: the next request on that
 * keep-alive connection is never answered. Over HTTP/2 the same leaves the stream half-open,
 * its flow-control window full, until the client gives up.
 *
 * So connect gets a body iterable that leaves the request readable when abandoned
 * (`requestBodyOf`), and once the response is complete the rest is read and dropped, as Go's
 * net/http does, up to `drainLimitBytes`; beyond that the HTTP/1.1 connection is closed, or the
 * HTTP/2 stream is reset with NO_ERROR (RFC 9113 §8.1: "stop sending, the response is
 * complete"). Go drains only 256 KiB; this limit is larger because a client that is still
 * uploading when its connection closes (connect-node, curl) reports the reset, not the answer
 * it was sent, so a body a few times over the size limit should still get its
 * resource_exhausted. Dropping bytes costs bandwidth, not memory. When a body declares more
 * than the limit, an HTTP/1.1 response says `Connection: close` so the client reconnects.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import http2, { type Http2ServerRequest, type Http2ServerResponse } from "node:http2";

type NodeRequest = IncomingMessage | Http2ServerRequest;
type NodeResponse = ServerResponse | Http2ServerResponse;

/** Most bytes of an unread request body read and dropped to keep its connection usable. */
export const DEFAULT_DRAIN_LIMIT_BYTES = 8 * 1024 * 1024;

/** The request body as connect reads it, without destroying the request when connect stops early. */
export async function* requestBodyOf(req: NodeRequest): AsyncGenerator<Uint8Array> {
  for await (const chunk of req.iterator({ destroyOnReturn: false })) yield chunk as Uint8Array;
}

/** Once `res` is complete, reads and drops what is left of `req`'s body (see the module comment). */
export function settleUnreadRequestBody(
  req: NodeRequest,
  res: NodeResponse,
  drainLimitBytes = DEFAULT_DRAIN_LIMIT_BYTES,
): void {
  if (res instanceof http.ServerResponse) {
    const socket = (req as IncomingMessage).socket;
    // The client is still uploading a request whose answer it has: it sent nothing else on it.
    res.once("finish", () => drain(req, drainLimitBytes, () => socket.destroy()));
  } else {
    // The response's own "finish" waits for the stream to close, which is what would not happen.
    const stream = res.stream;
    stream.once("finish", () =>
      drain(req, drainLimitBytes, () => {
        if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
      }),
    );
  }
}

/**
 * Call right before the response's headers are written: when the request body is not read to
 * its end and declares more than the drain limit, the HTTP/1.1 response says
 * `Connection: close`, since the connection will not be reused.
 */
export function closeIfBodyTooLargeToDrain(
  req: NodeRequest,
  res: NodeResponse,
  drainLimitBytes = DEFAULT_DRAIN_LIMIT_BYTES,
): void {
  if (!(res instanceof http.ServerResponse) || res.headersSent || req.complete) return;
  const declared = Number(req.headers["content-length"] ?? Number.NaN);
  if (declared > drainLimitBytes) res.setHeader("Connection", "close");
}

function drain(req: NodeRequest, limitBytes: number, tooMuch: () => void): void {
  if (req.complete || req.destroyed) return;
  let drained = 0;
  req.on("data", (chunk: Uint8Array) => {
    drained += chunk.length;
    if (drained > limitBytes) tooMuch();
  });
  req.once("error", () => undefined); // the connection or stream closing mid-body is expected here
  req.resume();
}
