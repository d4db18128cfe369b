import { ml_dsa44, ml_dsa65, ml_dsa87 } from '@noble/post-quantum/ml-dsa.js';
import {
  slh_dsa_sha2_128f,
  slh_dsa_sha2_128s,
  slh_dsa_sha2_192f,
  slh_dsa_sha2_192s,
  slh_dsa_sha2_256f,
  slh_dsa_sha2_256s,
  slh_dsa_shake_128f,
  slh_dsa_shake_128s,
  slh_dsa_shake_192f,
  slh_dsa_shake_192s,
  slh_dsa_shake_256f,
  slh_dsa_shake_256s,
} from '@noble/post-quantum/slh-dsa.js';
import type { PqcKeyType } from './key-type.js';

interface PqcVerifier {
  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
}

/** @noble/post-quantum's verifier of each set: pure ML-DSA (FIPS 204 Algorithm 3) and SLH-DSA (FIPS 205 Algorithm 24), empty context. */
const VERIFIERS: Readonly<Record<PqcKeyType, PqcVerifier>> = {
  'MLDSA-44': ml_dsa44,
  'MLDSA-65': ml_dsa65,
  'MLDSA-87': ml_dsa87,
  'SLHDSA-SHA2-128s': slh_dsa_sha2_128s,
  'SLHDSA-SHA2-128f': slh_dsa_sha2_128f,
  'SLHDSA-SHA2-192s': slh_dsa_sha2_192s,
  'SLHDSA-SHA2-192f': slh_dsa_sha2_192f,
  'SLHDSA-SHA2-256s': slh_dsa_sha2_256s,
  'SLHDSA-SHA2-256f': slh_dsa_sha2_256f,
  'SLHDSA-SHAKE-128s': slh_dsa_shake_128s,
  'SLHDSA-SHAKE-128f': slh_dsa_shake_128f,
  'SLHDSA-SHAKE-192s': slh_dsa_shake_192s,
  'SLHDSA-SHAKE-192f': slh_dsa_shake_192f,
  'SLHDSA-SHAKE-256s': slh_dsa_shake_256s,
  'SLHDSA-SHAKE-256f': slh_dsa_shake_256f,
};

/** Whether `signature` over `message` verifies with `publicKey` of `keyType`; false for a signature noble cannot read (wrong length). */
export function pqcVerify(keyType: PqcKeyType, signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  try {
    return VERIFIERS[keyType].verify(signature, message, publicKey);
  } catch {
    return false;
  }
}
