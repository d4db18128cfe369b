import type { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';

const read = new WeakMap<TLSSocket, X509Certificate | undefined>();

/**
 * The client's certificate, with the chain it sent linked behind it
 * (issuerCertificate), read from the TLS binding once per connection and
 * kept: on Node 20 a second getPeerX509Certificate() no longer links the
 * sent chain. server.ts reads it when the handshake completes, which also
 * clears a verify error OpenSSL 3.0 leaves on its error queue for a client
 * certificate whose signature does not verify (TLS 1.2): left there, the
 * connection's first read finds it and Node drops the connection before the
 * request is read, so the device got a reset instead of est-ra's 403 (found
 * by npm run fuzz; test/est/fuzz-findings.spec.ts). Reading est-ra's own
 * certificate cleared it too, at ~10 % of an enrollment's CPU (profile).
 */
export function peerCertificateOf(socket: TLSSocket): X509Certificate | undefined {
  if (read.has(socket)) return read.get(socket);
  const certificate = socket.getPeerX509Certificate();
  read.set(socket, certificate);
  return certificate;
}
