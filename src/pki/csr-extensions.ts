import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest, type Attributes } from '@peculiar/asn1-csr';
import * as asn1X509 from '@peculiar/asn1-x509';

const ID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';

/** One extension a CSR asks for, decoded far enough to judge it. */
export interface RequestedExtension {
  readonly oid: string;
  readonly critical: boolean;
  /** basicConstraints: whether it asks to be a CA. */
  readonly ca?: boolean;
  /** extendedKeyUsage: the purposes it asks for. */
  readonly extendedKeyUsages?: readonly string[];
  /** keyUsage: the bits it asks for, as asn1-x509 KeyUsageFlags (keyCertSign 32, cRLSign 64). */
  readonly keyUsageBits?: number;
}

/**
 * Every extension in a CSR's extensionRequest attribute (RFC 2985 §5.4.2),
 * parsed by @peculiar/asn1-csr and asn1-x509. Only profiles that forward the
 * CSR unchanged need this, so the enrollment fast path does not pay for it.
 * Throws on malformed input.
 */
export function requestedExtensions(csrDer: Uint8Array): RequestedExtension[] {
  const request = AsnConvert.parse(csrDer, CertificationRequest);
  // Typed as always present, but absent when a CSR omits the [0] field (as asn1-csr's own docs warn).
  const attributes = request.certificationRequestInfo.attributes as Attributes | undefined;
  const attribute = attributes?.find((a) => a.type === ID_EXTENSION_REQUEST);
  if (!attribute) return [];
  return attribute.values.flatMap((value) =>
    AsnConvert.parse(value, asn1X509.Extensions).map((extension) => {
      const inner = extension.extnValue.buffer;
      const base = { oid: extension.extnID, critical: extension.critical };
      switch (extension.extnID) {
        case asn1X509.id_ce_basicConstraints:
          return { ...base, ca: AsnConvert.parse(inner, asn1X509.BasicConstraints).cA };
        case asn1X509.id_ce_extKeyUsage:
          return { ...base, extendedKeyUsages: [...AsnConvert.parse(inner, asn1X509.ExtendedKeyUsage)] };
        case asn1X509.id_ce_keyUsage:
          return { ...base, keyUsageBits: AsnConvert.parse(inner, asn1X509.KeyUsage).toNumber() };
        default:
          return base;
      }
    }),
  );
}
