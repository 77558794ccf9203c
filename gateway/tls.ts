// TLS termination for one listener: certificates chosen by SNI (exact names, then wildcards,
// then the default), loaded from PEM files or PEM text, watched and swapped in when renewed
// (a broken file is logged and the certificate it belongs to keeps serving), and session
// ticket keys rotated on a timer.
import { constants as cryptoConstants, createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { createSecureContext, type SecureContext, type SecureContextOptions, type TlsOptions } from 'node:tls';
import type { FastifyBaseLogger } from 'fastify';
import type { CertificateSpec, TlsSpec } from '../config/compile.ts';
import { isPemText } from '../config/load.ts';

/** A certificate ready to serve. */
export interface LoadedCertificate {
  spec: CertificateSpec;
  /** Lower-case SNI names: exact ("api.example.com") or wildcard ("*.example.com"). */
  names: string[];
  subject: string;
  issuer: string;
  notAfter: Date;
  fingerprint256: string;
  context: SecureContext;
  options: SecureContextOptions;
}

/** What the admin API shows of a certificate. */
export interface CertificateInfo {
  names: string[];
  subject: string;
  issuer: string;
  notAfter: string;
  fingerprint256: string;
  default: boolean;
  files: string[];
}

export class TlsFileError extends Error {
  readonly code = 'CW_TLS_FILE';
  constructor(
    message: string,
    readonly file: string | null,
    readonly field: string,
  ) {
    super(message);
  }
}

/** PEM from a file, or the value itself when it is PEM text. */
export function readPem(value: string, field: string): Buffer {
  if (isPemText(value)) return Buffer.from(value);
  try {
    return readFileSync(value);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new TlsFileError(`cannot read ${field} ${value}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`, value, field);
  }
}

const fileOf = (value: string | null): string[] => (value === null || isPemText(value) ? [] : [value]);

/** Files a TLS spec reads (to watch). */
export function tlsFiles(spec: TlsSpec): string[] {
  const files = spec.certificates.flatMap((c) => [...fileOf(c.cert), ...fileOf(c.key), ...fileOf(c.chain)]);
  if (spec.clientAuth) files.push(...fileOf(spec.clientAuth.ca));
  return [...new Set(files)];
}

/** DNS names of a certificate: its subjectAltName DNS entries, else its CN. */
function certNames(x: X509Certificate): string[] {
  const san = x.subjectAltName;
  if (san) {
    const dns = san
      .split(/,\s*/)
      .filter((e) => e.startsWith('DNS:'))
      .map((e) => e.slice(4).toLowerCase());
    if (dns.length > 0) return dns;
  }
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(x.subject)?.[1];
  return cn ? [cn.toLowerCase()] : [];
}

/** Options shared by every secure context of a listener. */
function baseOptions(spec: TlsSpec, clientCa: Buffer | null): SecureContextOptions {
  return {
    minVersion: spec.minVersion,
    maxVersion: spec.maxVersion,
    ciphers: spec.ciphers,
    honorCipherOrder: false,
    // No TLS compression (CRIME); no tickets when they are turned off.
    secureOptions:
      cryptoConstants.SSL_OP_NO_COMPRESSION | (spec.sessionTickets ? 0 : cryptoConstants.SSL_OP_NO_TICKET),
    ...(clientCa ? { ca: clientCa } : {}),
  };
}

/** Load and check one certificate: it parses, it is current, the key belongs to it. */
export function loadCertificate(c: CertificateSpec, base: SecureContextOptions): LoadedCertificate {
  const cert = readPem(c.cert, `${c.field}.cert`);
  const key = readPem(c.key, `${c.field}.key`);
  const chain = c.chain === null ? null : readPem(c.chain, `${c.field}.chain`);
  const where = (what: 'cert' | 'key' | 'chain') => {
    const v = what === 'cert' ? c.cert : what === 'key' ? c.key : c.chain!;
    return isPemText(v) ? `${c.field}.${what} (inline PEM)` : `${c.field}.${what} ${v}`;
  };
  let x: X509Certificate;
  try {
    x = new X509Certificate(cert);
  } catch (err) {
    throw new TlsFileError(`${where('cert')}: not a PEM certificate (${(err as Error).message})`, fileOf(c.cert)[0] ?? null, `${c.field}.cert`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new TlsFileError(`${where('key')}: not a PEM private key (${(err as Error).message})`, fileOf(c.key)[0] ?? null, `${c.field}.key`);
  }
  if (!x.checkPrivateKey(privateKey)) {
    throw new TlsFileError(`${where('key')} is not the private key of ${where('cert')}`, fileOf(c.key)[0] ?? null, `${c.field}.key`);
  }
  if (chain !== null) {
    try {
      new X509Certificate(chain);
    } catch (err) {
      throw new TlsFileError(`${where('chain')}: not a PEM certificate (${(err as Error).message})`, fileOf(c.chain)[0] ?? null, `${c.field}.chain`);
    }
  }
  const options: SecureContextOptions = { ...base, cert: chain === null ? cert : Buffer.concat([cert, Buffer.from('\n'), chain]), key };
  let context: SecureContext;
  try {
    context = createSecureContext(options);
  } catch (err) {
    throw new TlsFileError(`${where('cert')}: ${(err as Error).message}`, fileOf(c.cert)[0] ?? null, `${c.field}.cert`);
  }
  return {
    spec: c,
    names: (c.names ?? certNames(x)).map((n) => n.toLowerCase()),
    subject: x.subject.replace(/\n/g, ', '),
    issuer: x.issuer.replace(/\n/g, ', '),
    notAfter: new Date(x.validTo),
    fingerprint256: x.fingerprint256,
    context,
    options,
  };
}

/** The certificates of one listener, by SNI name. */
interface CertificateSet {
  certs: LoadedCertificate[];
  exact: Map<string, SecureContext>;
  /** ".example.com" → context, for "*.example.com". */
  wildcard: Map<string, SecureContext>;
}

function certificateSet(certs: LoadedCertificate[]): CertificateSet {
  const exact = new Map<string, SecureContext>();
  const wildcard = new Map<string, SecureContext>();
  for (const c of certs) {
    for (const n of c.names) {
      if (n.startsWith('*.')) {
        if (!wildcard.has(n.slice(1))) wildcard.set(n.slice(1), c.context);
      } else if (!exact.has(n)) exact.set(n, c.context);
    }
  }
  return { certs, exact, wildcard };
}

/** Server options that cannot change without a new server (client certificates). */
export function serverTlsOptions(spec: TlsSpec): TlsOptions {
  return spec.clientAuth
    ? { requestCert: true, rejectUnauthorized: spec.clientAuth.mode === 'require' }
    : { requestCert: false, rejectUnauthorized: false };
}

/** Something with a server's secure context and ticket keys (tls.Server, https.Server, Http2SecureServer). */
interface TlsServerLike {
  setSecureContext(options: SecureContextOptions): void;
  setTicketKeys(keys: Buffer): void;
}

/**
 * Certificates, SNI and rotation for one TLS listener. Build it (throws TlsFileError when a
 * certificate cannot be used), pass `serverOptions()` to the server, then `attach` the server.
 */
export class TlsListener {
  private set: CertificateSet;
  private spec: TlsSpec;
  private clientCa: Buffer | null;
  private server: TlsServerLike | null = null;
  private watchers: FSWatcher[] = [];
  private watchTimer: NodeJS.Timeout | null = null;
  private ticketTimer: NodeJS.Timeout | null = null;
  /** Called after each attempt to reload certificates from disk. */
  onReload: ((r: { ok: boolean; errors: TlsFileError[] }) => void) | null = null;

  constructor(
    spec: TlsSpec,
    private readonly log: FastifyBaseLogger,
    private readonly listener: string,
  ) {
    this.spec = spec;
    const prepared = TlsListener.prepare(spec);
    this.clientCa = prepared.clientCa;
    this.set = prepared.set;
  }

  /** Load every certificate of a spec; throws the first TlsFileError. */
  static prepare(spec: TlsSpec): { set: CertificateSet; clientCa: Buffer | null } {
    const clientCa = spec.clientAuth ? readPem(spec.clientAuth.ca, `${spec.field}.clientAuth.ca`) : null;
    if (clientCa !== null) {
      try {
        createSecureContext({ ca: clientCa });
        new X509Certificate(clientCa);
      } catch (err) {
        throw new TlsFileError(`${spec.field}.clientAuth.ca: not a PEM certificate bundle (${(err as Error).message})`, fileOf(spec.clientAuth!.ca)[0] ?? null, `${spec.field}.clientAuth.ca`);
      }
    }
    const base = baseOptions(spec, clientCa);
    return { set: certificateSet(spec.certificates.map((c) => loadCertificate(c, base))), clientCa };
  }

  /** Options for the server: the default certificate, SNI, protocol settings. */
  serverOptions(): TlsOptions {
    const def = this.set.certs[0]!;
    return {
      ...def.options,
      ...serverTlsOptions(this.spec),
      SNICallback: (servername, cb) => cb(null, this.contextFor(servername)),
    };
  }

  /** The context for an SNI name: exact, then a wildcard one label deep, then the default. */
  contextFor(servername: string): SecureContext {
    const name = servername.toLowerCase().replace(/\.$/, '');
    const set = this.set;
    const exact = set.exact.get(name);
    if (exact) return exact;
    const dot = name.indexOf('.');
    if (dot > 0) {
      const w = set.wildcard.get(name.slice(dot));
      if (w) return w;
    }
    return set.certs[0]!.context;
  }

  attach(server: TlsServerLike): void {
    this.server = server;
    if (this.spec.sessionTickets) {
      server.setTicketKeys(randomBytes(48));
      if (this.spec.ticketKeyRotationMs > 0) {
        this.ticketTimer = setInterval(() => this.server?.setTicketKeys(randomBytes(48)), this.spec.ticketKeyRotationMs);
        this.ticketTimer.unref();
      }
    }
    if (this.spec.watch) this.watch();
  }

  certificates(): CertificateInfo[] {
    return this.set.certs.map((c, i) => ({
      names: c.names,
      subject: c.subject,
      issuer: c.issuer,
      notAfter: c.notAfter.toISOString(),
      fingerprint256: c.fingerprint256,
      default: i === 0,
      files: [...fileOf(c.spec.cert), ...fileOf(c.spec.key), ...fileOf(c.spec.chain)],
    }));
  }

  /**
   * Certificates of a new config (a reload): all or nothing, and only when the settings
   * bound to the server (versions, ciphers, client auth) are unchanged. Throws TlsFileError.
   */
  replace(spec: TlsSpec): void {
    const prepared = TlsListener.prepare(spec);
    this.spec = spec;
    this.clientCa = prepared.clientCa;
    this.install(prepared.set);
    this.unwatch();
    if (spec.watch && this.server) this.watch();
  }

  /**
   * Read the certificate files again. A certificate whose files are broken keeps its running
   * version (logged with the file name); the others are swapped in.
   */
  reloadFromDisk(): { ok: boolean; errors: TlsFileError[] } {
    const errors: TlsFileError[] = [];
    let clientCa = this.clientCa;
    if (this.spec.clientAuth) {
      try {
        clientCa = TlsListener.prepare({ ...this.spec, certificates: [] }).clientCa;
      } catch (err) {
        errors.push(err as TlsFileError);
      }
    }
    const base = baseOptions(this.spec, clientCa);
    const certs = this.set.certs.map((old) => {
      try {
        const fresh = loadCertificate(old.spec, base);
        if (fresh.fingerprint256 !== old.fingerprint256) {
          this.log.info({ listener: this.listener, names: fresh.names, notAfter: fresh.notAfter.toISOString(), files: fileOf(old.spec.cert) }, `certificate for ${fresh.names.join(', ')} renewed`);
        }
        return fresh;
      } catch (err) {
        const e = err instanceof TlsFileError ? err : new TlsFileError((err as Error).message, null, old.spec.field);
        errors.push(e);
        return old;
      }
    });
    for (const e of errors) {
      this.log.error({ listener: this.listener, code: 'CW_TLS_FILE', file: e.file, field: e.field }, `certificate file rejected; the previous certificate keeps serving: ${e.message}`);
    }
    this.clientCa = clientCa;
    this.install(certificateSet(certs));
    const result = { ok: errors.length === 0, errors };
    this.onReload?.(result);
    return result;
  }

  private install(set: CertificateSet): void {
    this.set = set;
    // Connections already open keep the context they were made with.
    this.server?.setSecureContext(set.certs[0]!.options);
  }

  private watch(): void {
    const byDir = new Map<string, Set<string>>();
    for (const f of tlsFiles(this.spec)) {
      const d = dirname(f);
      let names = byDir.get(d);
      if (!names) byDir.set(d, (names = new Set()));
      names.add(basename(f));
    }
    for (const [dir, names] of byDir) {
      try {
        const w = watch(dir, (_event, file) => {
          const name = file?.toString() ?? '';
          // Kubernetes secret mounts swap a "..data" symlink; certbot replaces files in place.
          if (!names.has(name) && !name.startsWith('..')) return;
          if (this.watchTimer) clearTimeout(this.watchTimer);
          this.watchTimer = setTimeout(() => {
            this.watchTimer = null;
            this.reloadFromDisk();
          }, 200);
        });
        w.on('error', (err) => this.log.warn({ err, dir, listener: this.listener }, 'certificate watch failed; SIGHUP reloads certificates'));
        this.watchers.push(w);
      } catch (err) {
        this.log.warn({ err, dir, listener: this.listener }, 'cannot watch certificate files; SIGHUP reloads certificates');
      }
    }
  }

  private unwatch(): void {
    if (this.watchTimer) clearTimeout(this.watchTimer);
    this.watchTimer = null;
    for (const w of this.watchers) w.close();
    this.watchers = [];
  }

  close(): void {
    this.unwatch();
    if (this.ticketTimer) clearInterval(this.ticketTimer);
    this.ticketTimer = null;
  }
}
