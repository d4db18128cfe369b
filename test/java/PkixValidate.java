import java.io.FileInputStream;
import java.security.cert.CertPathValidator;
import java.security.cert.CertificateFactory;
import java.security.cert.PKIXParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * RFC 5280 §6.1 path validation by the JDK's own PKIX CertPathValidator, for
 * certificates OpenSSL 3.0 cannot validate: `openssl verify` fails on a leaf
 * whose key it cannot load (an ML-DSA or SLH-DSA key) before it looks at
 * the chain (X509_self_signed: "unable to get certs public key"). Usage:
 * PkixValidate root.pem leaf.pem [intermediate.pem ...]; prints "OK" and the
 * leaf's key algorithm, or exits 1 with the JDK's reason.
 */
public final class PkixValidate {
  public static void main(String[] args) throws Exception {
    CertificateFactory factory = CertificateFactory.getInstance("X.509");
    List<X509Certificate> path = new ArrayList<>();
    for (int i = 1; i < args.length; i++) {
      try (FileInputStream in = new FileInputStream(args[i])) {
        path.add((X509Certificate) factory.generateCertificate(in));
      }
    }
    X509Certificate root;
    try (FileInputStream in = new FileInputStream(args[0])) {
      root = (X509Certificate) factory.generateCertificate(in);
    }
    PKIXParameters parameters = new PKIXParameters(Set.of(new TrustAnchor(root, null)));
    parameters.setRevocationEnabled(false);
    try {
      CertPathValidator.getInstance("PKIX").validate(factory.generateCertPath(path), parameters);
    } catch (Exception e) {
      System.out.println("refused " + e.getMessage());
      System.exit(1);
    }
    System.out.println("OK " + path.get(0).getPublicKey().getAlgorithm());
  }
}
