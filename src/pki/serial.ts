import { randomBytes } from 'node:crypto';

/**
 * A fresh certificate serial: 16 random bytes (128 bits, beyond the 64 bits
 * of entropy CA/B Forum asks for), positive and without a leading zero byte
 * so its DER INTEGER is exactly as long as it looks (RFC 5280 §4.1.2.2).
 */
export function newSerialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex');
}
