/**
 * The first fuzz cases (issue #10): a device with a valid passcode sending a
 * mutated CSR (DER, base64 on one line or wrapped, PEM, cut base64) under
 * several content types; hostile Authorization headers; hostile label
 * paths; hostile content types; random bytes. Every answer must be below 500
 * (501 for the operations est-ra does not offer).
 */
import { int, mutate, pick, type Random } from './random.js';

export interface PlainCase {
  readonly kind: string;
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: Buffer;
}

export function encode(random: Random, der: Buffer): { body: Buffer; contentType: string } {
  const base64 = der.toString('base64');
  switch (int(random, 5)) {
    case 0:
      return { body: der, contentType: 'application/pkcs10' };
    case 1:
      return { body: Buffer.from(base64), contentType: 'application/pkcs10' };
    case 2:
      return { body: Buffer.from(`${(base64.match(/.{1,64}/g) ?? []).join('\r\n')}\r\n`), contentType: 'application/pkcs10' };
    case 3:
      return { body: Buffer.from(`-----BEGIN CERTIFICATE REQUEST-----\n${base64}\n-----END CERTIFICATE REQUEST-----\n`), contentType: 'text/plain' };
    default:
      return { body: Buffer.from(base64.slice(0, int(random, base64.length))), contentType: 'application/x-www-form-urlencoded' };
  }
}

const HOSTILE_TEXT = ['', ' ', ':', '::', '\u0000', '%00', '..', '%2e%2e', 'é', '\u202e', 'a'.repeat(4096), '${jndi:ldap://x}', '"', '\\', '/', '%2F'];

export function passcodeCase(random: Random, seeds: readonly Buffer[], passcode: string): PlainCase {
  const basic = `Basic ${Buffer.from(`:${passcode}`).toString('base64')}`;
  switch (int(random, 6)) {
    case 0:
    case 1: {
      const { body, contentType } = encode(random, mutate(random, pick(random, seeds)));
      return {
        kind: 'mutated CSR',
        method: 'POST',
        path: '/.well-known/est/simpleenroll',
        headers: { Authorization: basic, 'Content-Type': contentType },
        body,
      };
    }
    case 2: {
      const junk = pick(random, [
        `Basic ${pick(random, HOSTILE_TEXT)}`,
        `Basic ${Buffer.from(pick(random, HOSTILE_TEXT)).toString('base64')}`,
        'Bearer x',
        `Basic ${'A'.repeat(int(random, 9000))}`,
        `basic ${Buffer.from(`${pick(random, HOSTILE_TEXT)}:${passcode}`).toString('base64')}`,
      ]);
      const { body } = encode(random, pick(random, seeds));
      return {
        kind: 'hostile Authorization',
        method: 'POST',
        path: '/.well-known/est/simpleenroll',
        headers: { Authorization: junk.replace(/[^\x20-\x7e]/g, '?'), 'Content-Type': 'application/pkcs10' },
        body,
      };
    }
    case 3: {
      const segments = Array.from({ length: int(random, 6) }, () => encodeURIComponent(pick(random, HOSTILE_TEXT)).slice(0, 300));
      const operation = pick(random, ['cacerts', 'csrattrs', 'simpleenroll', 'simplereenroll', 'serverkeygen', 'fullcmc', 'x', '']);
      return {
        kind: 'hostile label path',
        method: pick(random, ['GET', 'POST', 'PUT', 'HEAD', 'DELETE']),
        path: `/.well-known/est/${[...segments, operation].join('/')}`,
        headers: {},
      };
    }
    case 4:
      return {
        kind: 'hostile content type',
        method: 'POST',
        path: '/.well-known/est/simpleenroll',
        headers: {
          Authorization: basic,
          'Content-Type': pick(random, ['application/json', 'multipart/form-data; boundary=x', 'application/pkcs10; charset=', ';;;', 'text/plain; x=']),
        },
        body: encode(random, pick(random, seeds)).body,
      };
    default: {
      const body = Buffer.alloc(int(random, 2048));
      for (let i = 0; i < body.length; i++) body[i] = int(random, 256);
      return {
        kind: 'random body',
        method: 'POST',
        path: pick(random, ['/.well-known/est/simpleenroll', '/.well-known/est/simplereenroll']),
        headers: { Authorization: basic },
        body,
      };
    }
  }
}
