import { parentPort } from 'node:worker_threads';
import { pqcVerify } from './pqc-verifiers.js';
import type { PqcVerifyRequest, PqcVerifyAnswer } from './pqc-thread.js';

/** The thread that verifies PQC signatures for pki/pqc-thread.ts: one request, one answer, in order. */
parentPort!.on('message', (request: PqcVerifyRequest) => {
  const answer: PqcVerifyAnswer = { id: request.id, valid: pqcVerify(request.keyType, request.signature, request.message, request.publicKey) };
  parentPort!.postMessage(answer);
});
