import { Worker } from 'node:worker_threads';
import type { PqcKeyType } from './key-type.js';

export interface PqcVerifyRequest {
  readonly id: number;
  readonly keyType: PqcKeyType;
  readonly signature: Uint8Array;
  readonly message: Uint8Array;
  readonly publicKey: Uint8Array;
}

export interface PqcVerifyAnswer {
  readonly id: number;
  readonly valid: boolean;
}

interface Pending {
  resolve(valid: boolean): void;
  reject(error: Error): void;
}

/**
 * Verifies PQC signatures on one worker thread (pki/pqc-worker.ts), off the
 * event loop: noble verifies in JavaScript, and `npm run bench` (section
 * pqc) measured 61 ms of CPU for one SLH-DSA-SHAKE-256f CSR, during which
 * the main thread would serve nobody. The thread starts at the first PQC
 * CSR and holds the process open only while it has work. If it dies, the
 * requests it held fail (500) and the next one starts a new thread.
 */
class PqcThread {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  verify(keyType: PqcKeyType, signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): Promise<boolean> {
    const worker = (this.worker ??= this.start());
    const id = this.nextId++;
    // Copies of exactly these bytes (new Uint8Array copies; Buffer's slice would not), handed over: a Buffer's view may hold a larger shared slab.
    const request: PqcVerifyRequest = {
      id,
      keyType,
      signature: new Uint8Array(signature),
      message: new Uint8Array(message),
      publicKey: new Uint8Array(publicKey),
    };
    return new Promise<boolean>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ref();
      try {
        worker.postMessage(request, [request.signature.buffer, request.message.buffer, request.publicKey.buffer] as ArrayBuffer[]);
      } catch (error) {
        this.settled(worker, id);
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  /** Forgets a request; the thread stops holding the process open when none is left. */
  private settled(worker: Worker, id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) worker.unref();
  }

  private start(): Worker {
    const worker = new Worker(new URL('./pqc-worker.js', import.meta.url));
    worker.on('message', ({ id, valid }: PqcVerifyAnswer) => {
      this.pending.get(id)?.resolve(valid);
      this.settled(worker, id);
    });
    worker.on('error', (error) => this.fail(worker, error));
    worker.on('exit', (code) => this.fail(worker, new Error(`the PQC verification thread exited (${code})`)));
    worker.unref();
    return worker;
  }

  private fail(worker: Worker, error: Error): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }
}

const thread = new PqcThread();

/** Whether a PQC signature verifies, checked on the verification thread. */
export function verifyOnPqcThread(keyType: PqcKeyType, signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): Promise<boolean> {
  return thread.verify(keyType, signature, message, publicKey);
}
