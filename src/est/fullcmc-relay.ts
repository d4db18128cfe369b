import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import httpProxy from 'http-proxy';
import type { FullCmcRoute } from '../policy/profile.js';
import { EstError } from '../errors.js';
import { MEDIA_TYPE } from './media-types.js';

/** The upstream's answer to a relayed /fullcmc, as it came. */
export interface RelayedAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

/** A CMC response is a few KB of certificates and status; a runaway upstream must not fill memory. */
const MAX_ANSWER_BYTES = 1024 * 1024;

/** Headers of the upstream's answer the device gets; hop-by-hop and the upstream's own cookies or server names stay behind. */
const RELAYED_ANSWER_HEADERS = ['content-type', 'content-transfer-encoding', 'retry-after'] as const;

/**
 * Relays a /fullcmc request (RFC 7030 §4.3) to the upstream byte for byte
 * with http-proxy, over est-ra's RA identity (`route.agent`, the TLS client
 * identity of every upstream call). The device's own headers do not go up:
 * the upstream sees est-ra (RA certificate, and Basic when configured), the
 * body as received and its media type. The answer is read back whole
 * (bounded) so it can be recorded before the device sees it.
 */
export function relayFullCmc(route: FullCmcRoute, req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<RelayedAnswer> {
  const proxy = httpProxy.createProxyServer({});
  return new Promise<RelayedAnswer>((resolve, reject) => {
    proxy.on('proxyRes', (answer) => {
      const chunks: Buffer[] = [];
      let size = 0;
      answer.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) {
          answer.destroy();
          reject(new EstError('EST_UPSTREAM_INVALID', { reason: `the upstream's /fullcmc answer is larger than ${MAX_ANSWER_BYTES} bytes` }));
        } else chunks.push(chunk);
      });
      answer.on('error', (cause) => reject(new EstError('EST_UPSTREAM_UNAVAILABLE', { reason: 'the upstream broke off its /fullcmc answer', cause })));
      answer.on('end', () => {
        const headers: Record<string, string> = {};
        for (const name of RELAYED_ANSWER_HEADERS) {
          const value = answer.headers[name];
          if (typeof value === 'string') headers[name] = value;
        }
        resolve({ status: answer.statusCode ?? 502, headers, body: Buffer.concat(chunks) });
      });
    });
    // Only what the upstream needs; the device's Authorization (its passcode) is est-ra's to check, not the upstream's.
    const headers: Record<string, string> = {
      'content-type': req.headers['content-type'] ?? MEDIA_TYPE.cmcRequest,
      'content-length': String(body.length),
      ...(route.authorization ? { authorization: route.authorization } : {}),
    };
    // http-proxy sends the incoming request's headers; the body has been read already, so they are replaced here.
    req.headers = headers;
    // A device that went away while its request was relayed: http-proxy reports that as an event, not to the callback.
    proxy.on('econnreset', (cause) => reject(new EstError('EST_UPSTREAM_UNAVAILABLE', { reason: 'the client went away during the relay', cause })));
    proxy.web(
      req,
      res,
      {
        target: route.url,
        ignorePath: true,
        changeOrigin: true,
        agent: route.agent,
        secure: true,
        selfHandleResponse: true,
        proxyTimeout: route.timeoutMs,
        buffer: Readable.from([body]),
      },
      (cause) => reject(new EstError('EST_UPSTREAM_UNAVAILABLE', { reason: `the upstream's /fullcmc cannot be reached: ${cause.message}`, cause })),
    );
  }).finally(() => proxy.close());
}
