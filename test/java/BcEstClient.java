import java.io.FileInputStream;
import java.io.FileReader;
import java.io.FileWriter;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Security;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.util.Collections;
import java.util.HashSet;
import java.util.Set;
import javax.net.ssl.KeyManagerFactory;
import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.est.CACertsResponse;
import org.bouncycastle.est.CSRRequestResponse;
import org.bouncycastle.est.ESTService;
import org.bouncycastle.est.EnrollmentResponse;
import org.bouncycastle.est.HttpAuth;
import org.bouncycastle.est.jcajce.JcaJceUtils;
import org.bouncycastle.est.jcajce.JsseESTServiceBuilder;
import org.bouncycastle.openssl.PEMKeyPair;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaMiscPEMGenerator;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.pkcs.PKCS10CertificationRequest;

/**
 * Bouncy Castle's EST client (org.bouncycastle.est, Debian libbcpkix-java),
 * driven by test/est/bouncy-castle.spec.ts: the Java client many device
 * makers embed, sharing no code with est-ra, curl, OpenSSL or strongSwan.
 *
 * Usage: BcEstClient host:port label trust-anchors.pem operation args...
 *   cacerts out.pem
 *   csrattrs
 *   enroll csr.der user passcode out.pem                (HTTP Basic after the 401, BC's HttpAuth)
 *   reenroll csr.der client-cert.pem client-key.pem out.pem  (TLS client certificate)
 * Prints one line saying what it got; exits 1 with BC's exception otherwise.
 */
public final class BcEstClient {
  public static void main(String[] args) throws Exception {
    // BC's certificate-path trust manager asks for the "BC" provider by name.
    Security.addProvider(new BouncyCastleProvider());
    String server = args[0];
    String label = args[1];
    String trustAnchors = args[2];
    String operation = args[3];
    try {
      JsseESTServiceBuilder builder = new JsseESTServiceBuilder(server, JcaJceUtils.getCertPathTrustManager(anchors(trustAnchors), null));
      // est-ra's test server is reached by IP address; its certificate names it in an iPAddress SAN.
      builder.withHostNameAuthorizer((name, session) -> true);
      builder.withLabel(label);
      if (operation.equals("reenroll")) builder.withKeyManagers(keyManagers(args[5], args[6]));
      ESTService est = builder.build();
      switch (operation) {
        case "cacerts": {
          CACertsResponse response = est.getCACerts();
          X509CertificateHolder[] certs = ESTService.storeToArray(response.getCertificateStore());
          writePem(args[4], certs);
          System.out.println("cacerts " + certs.length);
          break;
        }
        case "csrattrs": {
          CSRRequestResponse response = est.getCSRAttributes();
          if (!response.hasAttributesResponse()) {
            System.out.println("csrattrs none");
            break;
          }
          StringBuilder oids = new StringBuilder();
          for (ASN1ObjectIdentifier oid : response.getAttributesResponse().getRequirements()) oids.append(' ').append(oid.getId());
          System.out.println("csrattrs" + oids);
          break;
        }
        case "enroll":
        case "reenroll": {
          PKCS10CertificationRequest csr = new PKCS10CertificationRequest(Files.readAllBytes(Paths.get(args[4])));
          boolean reenroll = operation.equals("reenroll");
          HttpAuth auth = reenroll ? null : new HttpAuth(null, args[5], args[6].toCharArray());
          EnrollmentResponse response = est.simpleEnroll(reenroll, csr, auth);
          if (!response.isCompleted()) {
            System.out.println(operation + " pending " + response.getNotBefore());
            System.exit(2);
          }
          X509CertificateHolder[] certs = ESTService.storeToArray(response.getStore());
          writePem(args[7], certs);
          System.out.println(operation + " " + certs[0].getSubject());
          break;
        }
        default:
          throw new IllegalArgumentException("unknown operation " + operation);
      }
    } catch (Exception e) {
      System.out.println("error " + e);
      e.printStackTrace();
      System.exit(1);
    }
  }

  private static Set<TrustAnchor> anchors(String file) throws Exception {
    Set<TrustAnchor> anchors = new HashSet<>();
    try (InputStream in = new FileInputStream(file)) {
      for (Certificate c : CertificateFactory.getInstance("X.509").generateCertificates(in)) anchors.add(new TrustAnchor((X509Certificate) c, null));
    }
    return anchors;
  }

  private static javax.net.ssl.KeyManager[] keyManagers(String certFile, String keyFile) throws Exception {
    X509Certificate cert;
    try (InputStream in = new FileInputStream(certFile)) {
      cert = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
    }
    PrivateKey key;
    try (PEMParser parser = new PEMParser(new FileReader(keyFile))) {
      Object object = parser.readObject();
      JcaPEMKeyConverter converter = new JcaPEMKeyConverter();
      key = object instanceof PEMKeyPair ? converter.getKeyPair((PEMKeyPair) object).getPrivate() : converter.getPrivateKey((PrivateKeyInfo) object);
    }
    KeyStore store = KeyStore.getInstance("PKCS12");
    store.load(null, null);
    store.setKeyEntry("device", key, new char[0], new Certificate[] {cert});
    KeyManagerFactory factory = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
    factory.init(store, new char[0]);
    return factory.getKeyManagers();
  }

  private static void writePem(String file, X509CertificateHolder[] certs) throws Exception {
    try (JcaPEMWriter writer = new JcaPEMWriter(new FileWriter(file))) {
      for (X509CertificateHolder cert : certs) writer.writeObject(new JcaMiscPEMGenerator(cert));
    }
  }
}
