/**
 * The single entry point to @peculiar/x509. Its decorators need
 * reflect-metadata loaded before the library itself, and it needs a WebCrypto
 * provider; doing both here means no other module has to remember either.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };
export const subtle = webcrypto.subtle;

/**
 * Node's Buffer is typed over ArrayBufferLike while WebCrypto-based APIs want
 * ArrayBuffer-backed views. Buffers made by Node are never shared, so this
 * only restates what is already true.
 */
export function bytes(data: Uint8Array): Uint8Array<ArrayBuffer> {
  return data as Uint8Array<ArrayBuffer>;
}

/** The certificates of a PEM bundle as PEM blocks, in order; anything else in the text (a key, comments) is skipped. */
export function pemCertificateBlocks(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}
