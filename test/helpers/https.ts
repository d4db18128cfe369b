import { request } from 'node:https';
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';

export interface RawAnswer {
  readonly status: number;
  /** Header names exactly as sent, with their values. */
  readonly rawHeaders: readonly string[];
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One HTTPS request on a fresh connection, reporting the exact status, header names and body. */
export function httpsRequest(
  url: string,
  options: { method: string; headers?: Record<string, string>; body?: Buffer | string; ca: string; cert?: string; key?: string },
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method,
        headers: options.headers,
        ca: readFileSync(options.ca),
        cert: options.cert && readFileSync(options.cert),
        key: options.key && readFileSync(options.key),
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, rawHeaders: res.rawHeaders, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}
