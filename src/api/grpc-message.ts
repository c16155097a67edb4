/**
 * gRPC's `grpc-message` trailer is percent-encoded with a narrow rule: only bytes outside
 * printable ASCII (0x20–0x7E) and "%" itself are encoded. connect-es encodes with
 * `encodeURIComponent`, which also encodes ":", "/", "?" and friends; grpc-js decodes with
 * `decodeURI`, which leaves those escaped, so its users read "name%3A must not be empty".
 * Re-encoding by the spec's rule reads right in every client.
 */

/** Encodes a status message for the `grpc-message` trailer exactly as the gRPC spec says. */
export function encodeGrpcMessage(text: string): string {
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) {
    if (byte >= 0x20 && byte <= 0x7e && byte !== 0x25) out += String.fromCharCode(byte);
    else out += "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/** Rewrites connect's `grpc-message` in `trailer` (if any) to the spec's encoding, in place. */
export function conformGrpcMessage(trailer: Headers): Headers {
  const message = trailer.get("grpc-message");
  if (message === null || !message.includes("%")) return trailer;
  let text: string;
  try {
    text = decodeURIComponent(message);
  } catch {
    return trailer; // not connect's encoding: leave it alone
  }
  trailer.set("grpc-message", encodeGrpcMessage(text));
  return trailer;
}
