import Foundation

/// HTTPS on the agent's own listener: `[agent] tls_cert`, `tls_key`, `tls_client_ca`.
public struct ListenerTLSSettings: Sendable, Equatable {
    /// PEM file: the agent's certificate, then any intermediates.
    public var certificateFile: String
    /// PEM file: the certificate's private key (a secret: mode 600).
    public var keyFile: String
    /// PEM file of the CA(s) that sign client certificates; set = mutual TLS: a client
    /// without a certificate signed by one of them is refused at the handshake.
    public var clientCAFile: String?

    public init(certificateFile: String, keyFile: String, clientCAFile: String? = nil) {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.clientCAFile = clientCAFile
    }
}

/// How a client of the agent (the CLI, `[report]`, `[scheduler]`, cluster peers) verifies an
/// `https://` server and, for mutual TLS, presents itself. Plain `http://` URLs ignore it.
public struct ClientTLSSettings: Sendable, Hashable {
    /// PEM file of the CA(s) trusted for the server's certificate; `nil` = the system's
    /// trust store.
    public var caFile: String?
    /// PEM file: the client certificate presented to a server that asks for one.
    public var certificateFile: String?
    /// PEM file: that certificate's private key.
    public var keyFile: String?

    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }

    /// No CA and no client certificate: the system's trust store, no client certificate.
    public var isDefault: Bool { caFile == nil && certificateFile == nil && keyFile == nil }
}

extension TableReader {
    /// A PEM file named by `key`: resolved against `baseDirectory`, required to be readable.
    func pemFile(_ key: String, baseDirectory: String) throws -> String? {
        guard let value = try string(key) else { return nil }
        guard !value.isEmpty else { throw error(key, "must not be empty") }
        let path = ConfigLoader.resolve(value, against: baseDirectory)
        guard FileManager.default.isReadableFile(atPath: path) else { throw error(key, "cannot read \"\(path)\"") }
        return path
    }

    /// `ca_file`, `cert_file`, `key_file` of an upstream table (`[report]`, `[scheduler]`); a
    /// key file others can read is a warning or, strict, an error.
    func clientTLS(baseDirectory: String, strict: Bool, warnings: inout [String]) throws -> ClientTLSSettings {
        var tls = ClientTLSSettings(caFile: try pemFile("ca_file", baseDirectory: baseDirectory))
        tls.certificateFile = try pemFile("cert_file", baseDirectory: baseDirectory)
        tls.keyFile = try pemFile("key_file", baseDirectory: baseDirectory)
        if tls.certificateFile != nil, tls.keyFile == nil { throw error("cert_file", "needs key_file (the certificate's private key)") }
        if tls.keyFile != nil, tls.certificateFile == nil { throw error("key_file", "needs cert_file (the certificate it belongs to)") }
        if let key = tls.keyFile { try checkSecret("key_file", path: key, strict: strict, warnings: &warnings) }
        return tls
    }

    /// `tls_cert`, `tls_key`, `tls_client_ca` of `[agent]`.
    func listenerTLS(baseDirectory: String, strict: Bool, warnings: inout [String]) throws -> ListenerTLSSettings? {
        let certificate = try pemFile("tls_cert", baseDirectory: baseDirectory)
        let key = try pemFile("tls_key", baseDirectory: baseDirectory)
        let clientCA = try pemFile("tls_client_ca", baseDirectory: baseDirectory)
        guard let certificate, let key else {
            if certificate != nil { throw error("tls_cert", "needs tls_key (the certificate's private key)") }
            if key != nil { throw error("tls_key", "needs tls_cert (the certificate it belongs to)") }
            if clientCA != nil { throw error("tls_client_ca", "needs tls_cert and tls_key: mutual TLS is TLS first") }
            return nil
        }
        try checkSecret("tls_key", path: key, strict: strict, warnings: &warnings)
        return ListenerTLSSettings(certificateFile: certificate, keyFile: key, clientCAFile: clientCA)
    }
}
