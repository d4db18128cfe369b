import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.Arrays;
import java.util.HexFormat;
import org.bouncycastle.asn1.ASN1Encodable;
import org.bouncycastle.asn1.ASN1Encoding;
import org.bouncycastle.asn1.ASN1InputStream;
import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.ASN1Primitive;
import org.bouncycastle.asn1.pkcs.Attribute;
import org.bouncycastle.asn1.pkcs.CertificationRequest;
import org.bouncycastle.asn1.pkcs.CertificationRequestInfo;
import org.bouncycastle.asn1.x500.DirectoryString;
import org.bouncycastle.asn1.x509.AuthorityKeyIdentifier;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.CRLDistPoint;
import org.bouncycastle.asn1.x509.Certificate;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.Extensions;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.asn1.x509.NameConstraints;
import org.bouncycastle.asn1.x509.SubjectKeyIdentifier;

/**
 * Bouncy Castle's half of the differential oracle (test/unit/differential.spec.ts):
 * one case per stdin line, "csr <hex>" or "cert <hex>", one verdict per stdout
 * line, "ok" or "refused <reason>". A case is ok when Bouncy Castle 1.72
 * reads exactly one object, its DER re-encoding (which re-encodes every
 * length, sorts every SET OF and normalises BOOLEAN and BIT STRING) is
 * byte-identical, BC's typed RFC 2986 / RFC 5280 classes accept it, and the
 * parts est-ra interprets or OpenSSL decodes (extensionRequest,
 * challengePassword; basicConstraints, keyUsage, extendedKeyUsage,
 * subjectAltName, key identifiers, CRL distribution points, name
 * constraints) parse with BC's classes and are DER
 * themselves (RFC 5280 §4.1: extnValue holds a DER encoding). Built only from library verdicts.
 */
public final class DerOracle {
  private static final ASN1ObjectIdentifier EXTENSION_REQUEST = new ASN1ObjectIdentifier("1.2.840.113549.1.9.14");
  private static final ASN1ObjectIdentifier CHALLENGE_PASSWORD = new ASN1ObjectIdentifier("1.2.840.113549.1.9.7");

  public static void main(String[] args) throws Exception {
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
    StringBuilder out = new StringBuilder();
    for (String line; (line = in.readLine()) != null; ) {
      if (line.isEmpty()) continue;
      String[] parts = line.split(" ", 2);
      String verdict;
      try {
        byte[] der = HexFormat.of().parseHex(parts.length > 1 ? parts[1] : "");
        ASN1Primitive object = strictDer(der);
        if (parts[0].equals("csr")) checkCsr(object);
        else checkCertificate(object);
        verdict = "ok";
      } catch (Throwable e) {
        verdict = ("refused " + e.getClass().getSimpleName() + ": " + e.getMessage()).replaceAll("[\\r\\n]+", " ");
      }
      out.append(verdict).append('\n');
      if (out.length() > 8192) {
        System.out.print(out);
        out.setLength(0);
      }
    }
    System.out.print(out);
    System.out.flush();
  }

  /** Exactly one object, nothing after it, and its DER re-encoding equal to the input. */
  static ASN1Primitive strictDer(byte[] der) throws Exception {
    if (der.length == 0) throw new IllegalArgumentException("empty");
    try (ASN1InputStream stream = new ASN1InputStream(der, true)) {
      ASN1Primitive object = stream.readObject();
      if (object == null) throw new IllegalArgumentException("no object");
      if (stream.available() > 0 || stream.readObject() != null) throw new IllegalArgumentException("bytes after the object");
      if (!Arrays.equals(object.getEncoded(ASN1Encoding.DER), der)) throw new IllegalArgumentException("not DER (re-encoding differs)");
      return object;
    }
  }

  static void checkCsr(ASN1Primitive object) throws Exception {
    CertificationRequest request = CertificationRequest.getInstance(object);
    CertificationRequestInfo info = request.getCertificationRequestInfo();
    info.getSubject().getRDNs();
    info.getSubjectPublicKeyInfo().getAlgorithm();
    if (info.getAttributes() == null) return;
    for (ASN1Encodable item : info.getAttributes()) {
      Attribute attribute = Attribute.getInstance(item);
      if (attribute.getAttrValues().size() == 0) continue;
      ASN1Encodable value = attribute.getAttrValues().getObjectAt(0);
      if (attribute.getAttrType().equals(EXTENSION_REQUEST)) Extensions.getInstance(value);
      else if (attribute.getAttrType().equals(CHALLENGE_PASSWORD)) DirectoryString.getInstance(value);
    }
  }

  static void checkCertificate(ASN1Primitive object) throws Exception {
    Certificate certificate = Certificate.getInstance(object);
    certificate.getSubject().getRDNs();
    certificate.getIssuer().getRDNs();
    Extensions extensions = certificate.getTBSCertificate().getExtensions();
    if (extensions == null) return;
    Extension basicConstraints = extensions.getExtension(Extension.basicConstraints);
    if (basicConstraints != null) BasicConstraints.getInstance(strictDer(basicConstraints.getExtnValue().getOctets()));
    Extension keyUsage = extensions.getExtension(Extension.keyUsage);
    if (keyUsage != null) KeyUsage.getInstance(strictDer(keyUsage.getExtnValue().getOctets()));
    Extension extendedKeyUsage = extensions.getExtension(Extension.extendedKeyUsage);
    if (extendedKeyUsage != null) ExtendedKeyUsage.getInstance(strictDer(extendedKeyUsage.getExtnValue().getOctets()));
    Extension subjectAltName = extensions.getExtension(Extension.subjectAlternativeName);
    if (subjectAltName != null) GeneralNames.getInstance(strictDer(subjectAltName.getExtnValue().getOctets())).getNames();
    Extension authorityKeyIdentifier = extensions.getExtension(Extension.authorityKeyIdentifier);
    if (authorityKeyIdentifier != null) AuthorityKeyIdentifier.getInstance(strictDer(authorityKeyIdentifier.getExtnValue().getOctets()));
    Extension crlDistributionPoints = extensions.getExtension(Extension.cRLDistributionPoints);
    if (crlDistributionPoints != null) CRLDistPoint.getInstance(strictDer(crlDistributionPoints.getExtnValue().getOctets())).getDistributionPoints();
    Extension nameConstraints = extensions.getExtension(Extension.nameConstraints);
    if (nameConstraints != null) NameConstraints.getInstance(strictDer(nameConstraints.getExtnValue().getOctets()));
    Extension subjectKeyIdentifier = extensions.getExtension(Extension.subjectKeyIdentifier);
    if (subjectKeyIdentifier != null) SubjectKeyIdentifier.getInstance(strictDer(subjectKeyIdentifier.getExtnValue().getOctets()));
  }
}
