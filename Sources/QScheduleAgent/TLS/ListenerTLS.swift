import Foundation
import NIOSSL
import Synchronization

/// The TLS context of the agent's listener (`[agent] tls_cert`, `tls_key`, `tls_client_ca`).
///
/// A reload re-reads the three files: connections accepted afterwards get the new
/// certificate (and client CA); open connections keep the one they shook hands with. Files
/// that no longer load change nothing: the reload fails and the old context stays.
public final class ListenerTLS: Sendable {
    /// The files, as configured at start (a reload re-reads them; new paths need a restart).
    public let settings: ListenerTLSSettings
    private let context: Mutex<NIOSSLContext>

    /// Loads the certificate chain, key and client CA; throws ``ConfigError`` naming the key
    /// and file that do not load (or a key that does not match the certificate).
    public init(settings: ListenerTLSSettings) throws {
        self.settings = settings
        context = Mutex(try Self.makeContext(settings))
    }

    /// The context for a connection accepted now.
    var current: NIOSSLContext { context.withLock { $0 } }

    /// The context the files hold now; throws ``ConfigError`` and leaves the current one.
    func reread() throws -> NIOSSLContext {
        try Self.makeContext(settings)
    }

    /// Makes `context` the one new connections get.
    func install(_ context: NIOSSLContext) {
        self.context.withLock { $0 = context }
    }

    static func makeContext(_ settings: ListenerTLSSettings) throws -> NIOSSLContext {
        let chain = try certificates(settings.certificateFile, key: "tls_cert")
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: settings.keyFile, format: .pem)
        } catch {
            throw ConfigError("[agent] tls_key \"\(settings.keyFile)\": not a PEM private key (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        if let clientCA = settings.clientCAFile {
            configuration.trustRoots = .certificates(try certificates(clientCA, key: "tls_client_ca"))
            // Verify the client's chain (no host name: clients are not named by one); BoringSSL
            // then refuses a handshake without a client certificate.
            configuration.certificateVerification = .noHostnameVerification
            configuration.sendCANameList = true
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw ConfigError("[agent] tls_key \"\(settings.keyFile)\" does not go with tls_cert \"\(settings.certificateFile)\" (\(error))")
        }
    }

    /// The PEM certificates in `path`, or ``ConfigError`` naming `key`.
    static func certificates(_ path: String, key: String, table: String = "[agent]") throws -> [NIOSSLCertificate] {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw ConfigError("\(table) \(key) \"\(path)\": not a PEM certificate (\(error))")
        }
        guard !chain.isEmpty else { throw ConfigError("\(table) \(key) \"\(path)\": holds no PEM certificate") }
        return chain
    }
}
