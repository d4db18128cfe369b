import type { CertificateView } from './certificate-view.js';

export const ID_CE_SUBJECT_ALT_NAME = '2.5.29.17';

/** What a renewal must keep (RFC 7030 §4.2.2): the subject and the subjectAltName extension, as DER. */
export interface CertificateIdentity {
  readonly subject: Buffer;
  /** The whole subjectAltName Extension, or undefined when the certificate has none. */
  readonly subjectAltName?: Buffer;
}

export function identityOf(certificate: CertificateView): CertificateIdentity {
  return { subject: certificate.subjectDer, subjectAltName: certificate.extension(ID_CE_SUBJECT_ALT_NAME) };
}

/** Byte-equal subjects, and subjectAltNames that are both absent or byte-equal. */
export function sameIdentity(a: CertificateIdentity, b: CertificateIdentity): boolean {
  const sameSan = a.subjectAltName && b.subjectAltName ? a.subjectAltName.equals(b.subjectAltName) : a.subjectAltName === b.subjectAltName;
  return a.subject.equals(b.subject) && sameSan;
}
