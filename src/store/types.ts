/**
 * Durable state behind one interface: SQLite for one RA node (embedded
 * default), PostgreSQL later for several. Methods are async so both fit.
 */

export type Operation = 'simpleenroll' | 'simplereenroll';

/** Who made a request, as the authentication step established it. */
export type Principal =
  | { readonly kind: 'passcode'; readonly passcodeId: string; readonly policy: string; readonly username?: string }
  | { readonly kind: 'certificate'; readonly subject: string; readonly serial: string; readonly issuer: string }
  | { readonly kind: 'none' };

export interface NewRequest {
  readonly id: string;
  readonly receivedAt: Date;
  readonly profile: string;
  readonly peerAddress: string;
  readonly principal: Principal;
  readonly operation: Operation;
  /** DER PKCS#10; absent when the body could not be decoded. */
  readonly csr?: Buffer;
}

export interface IssuedOutcome {
  readonly serial: string;
  readonly subject: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly certificate: Buffer;
}

export type RequestState = 'received' | 'issued' | 'refused';

export interface RequestRecord {
  readonly id: string;
  readonly receivedAt: string;
  readonly completedAt: string | null;
  readonly profile: string;
  readonly peerAddress: string;
  readonly principal: Principal;
  readonly operation: Operation;
  readonly csr: Buffer | null;
  readonly state: RequestState;
  readonly status: number | null;
  readonly reason: string | null;
  readonly serial: string | null;
  readonly subject: string | null;
  readonly notAfter: string | null;
}

export interface PasscodeRecord {
  readonly id: string;
  readonly policy: string;
  readonly username: string | null;
  /** `sha256:<hex>`: see auth/passcode.ts for why a fast hash is right here. */
  readonly hash: string;
  readonly description: string | null;
  readonly createdAt: string;
  readonly enabled: boolean;
}

export interface Store {
  /** Makes the request durable before anything is issued for it. */
  recordRequest(request: NewRequest): Promise<void>;
  /** Records the certificate issued for a request, atomically with its outcome. */
  recordIssued(requestId: string, completedAt: Date, outcome: IssuedOutcome): Promise<void>;
  /**
   * Records why a request was refused (status and the reason the client was
   * given), whether or not it was recorded as received before.
   */
  recordRefused(request: NewRequest, completedAt: Date, status: number, reason: string): Promise<void>;
  getRequest(id: string): Promise<RequestRecord | undefined>;
  listRequests(limit: number): Promise<RequestRecord[]>;

  addPasscode(passcode: PasscodeRecord): Promise<void>;
  /** The enabled passcode of a policy with this hash, if any. */
  findPasscode(policy: string, hash: string): Promise<PasscodeRecord | undefined>;

  close(): Promise<void>;
}
