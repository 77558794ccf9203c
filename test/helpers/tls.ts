// Certificates made in the test: a self-signed server certificate with SANs, PEM encoded.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export interface TestCert {
  cert: string;
  key: string;
}

function pemKey(der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`;
}

export async function selfSigned(names: string[] = ['localhost'], ips: string[] = ['127.0.0.1']): Promise<TestCert> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(8))).toString('hex'),
    name: `CN=${names[0] ?? 'test'}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 24 * 3600_000),
    signingAlgorithm: alg,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.SubjectAlternativeNameExtension([
        ...names.map((value) => ({ type: 'dns' as const, value })),
        ...ips.map((value) => ({ type: 'ip' as const, value })),
      ]),
    ],
  });
  return { cert: cert.toString('pem'), key: pemKey(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) };
}

export interface LeafOptions {
  /** DNS names (SANs); the first is also the CN unless `cn` is given. */
  names?: string[];
  ips?: string[];
  /** URI SANs, e.g. spiffe://example.org/ns/default/sa/orders. */
  uris?: string[];
  cn?: string;
  /** A client certificate (extended key usage clientAuth) instead of a server one. */
  client?: boolean;
  /** Validity from now, in hours (default 24). */
  hours?: number;
}

export interface TestCa {
  /** The CA certificate (PEM), to trust. */
  cert: string;
  key: string;
  issue(opts: LeafOptions): Promise<TestCert>;
}

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const serial = () => `01${Buffer.from(webcrypto.getRandomValues(new Uint8Array(8))).toString('hex')}`;

/** A small CA: a self-signed root that issues leaf certificates with chosen SANs. */
export async function makeCa(name = 'Causeway Test CA'): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 48 * 3600_000),
    signingAlgorithm: EC,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    cert: root.toString('pem'),
    key: pemKey(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)),
    async issue(opts) {
      const leafKeys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
      const names = opts.names ?? [];
      const cn = opts.cn ?? names[0] ?? 'leaf';
      const t = Date.now();
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject: `CN=${cn}`,
        issuer: root.subject,
        notBefore: new Date(t - 60_000),
        notAfter: new Date(t + (opts.hours ?? 24) * 3600_000),
        signingAlgorithm: EC,
        publicKey: leafKeys.publicKey,
        signingKey: keys.privateKey,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([opts.client ? x509.ExtendedKeyUsage.clientAuth : x509.ExtendedKeyUsage.serverAuth]),
          await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
          new x509.SubjectAlternativeNameExtension([
            ...names.map((value) => ({ type: 'dns' as const, value })),
            ...(opts.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
            ...(opts.uris ?? []).map((value) => ({ type: 'url' as const, value })),
          ]),
        ],
      });
      return { cert: leaf.toString('pem'), key: pemKey(await webcrypto.subtle.exportKey('pkcs8', leafKeys.privateKey)) };
    },
  };
}
