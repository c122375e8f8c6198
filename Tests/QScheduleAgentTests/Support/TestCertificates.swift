import Foundation

/// Certificates made with `openssl` at test time, in a folder of their own: two CAs, a
/// server certificate from each (for 127.0.0.1-127.0.0.4 and localhost, usable as a client
/// certificate too, as agents use theirs towards peers), and a client certificate from each.
/// Keys are mode 600.
struct TestCertificates {
    let dir: String

    var caFile: String { dir + "/ca.pem" }
    var otherCAFile: String { dir + "/other-ca.pem" }
    var serverCert: String { dir + "/server.pem" }
    var serverKey: String { dir + "/server.key" }
    /// A server certificate signed by the other CA.
    var otherServerCert: String { dir + "/other-server.pem" }
    var otherServerKey: String { dir + "/other-server.key" }
    var clientCert: String { dir + "/client.pem" }
    var clientKey: String { dir + "/client.key" }
    /// A client certificate signed by the other CA.
    var otherClientCert: String { dir + "/other-client.pem" }
    var otherClientKey: String { dir + "/other-client.key" }

    /// `[agent]` lines for HTTPS with the first CA's server certificate; `mutual` adds the
    /// first CA as the client CA.
    func agentLines(mutual: Bool) -> String {
        "tls_cert = \"\(serverCert)\"\ntls_key = \"\(serverKey)\"\n" + (mutual ? "tls_client_ca = \"\(caFile)\"\n" : "")
    }

    static func make() throws -> TestCertificates {
        let certificates = TestCertificates(dir: try makeTemporaryDirectory())
        try certificates.authority("ca")
        try certificates.authority("other-ca")
        let server = "subjectAltName=IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3,IP:127.0.0.4,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n"
        try certificates.leaf("server", signedBy: "ca", extensions: server)
        try certificates.leaf("other-server", signedBy: "other-ca", extensions: server)
        try certificates.leaf("client", signedBy: "ca", extensions: "extendedKeyUsage=clientAuth\n")
        try certificates.leaf("other-client", signedBy: "other-ca", extensions: "extendedKeyUsage=clientAuth\n")
        return certificates
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }

    private func authority(_ name: String) throws {
        try openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).pem", "-subj", "/CN=qagent test \(name)",
        ])
    }

    private func leaf(_ name: String, signedBy ca: String, extensions: String) throws {
        try extensions.write(toFile: "\(dir)/\(name).ext", atomically: true, encoding: .utf8)
        try openssl([
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).csr", "-subj", "/CN=\(name)",
        ])
        try openssl([
            "x509", "-req", "-in", "\(dir)/\(name).csr", "-CA", "\(dir)/\(ca).pem", "-CAkey", "\(dir)/\(ca).key", "-CAcreateserial",
            "-days", "2", "-out", "\(dir)/\(name).pem", "-extfile", "\(dir)/\(name).ext",
        ])
        chmod("\(dir)/\(name).key", 0o600)
    }

    private func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw AgentProcessError(description: "openssl \(arguments.joined(separator: " ")) exited \(process.terminationStatus)")
        }
    }
}

/// `curl` as an independent TLS client (OpenSSL, not the agent's BoringSSL): the HTTP status
/// and body, or `nil` when no HTTP answer came (curl's exit status then says why).
func curl(_ url: String, _ options: [String] = [], token: String? = testToken) throws -> (exit: Int32, status: Int, body: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
    var arguments = ["-s", "-m", "10", "-w", "\n%{http_code}"] + options
    if let token { arguments += ["-H", "Q-Server-Token: \(token)"] }
    process.arguments = arguments + [url]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    let status = Int(text.split(separator: "\n").last ?? "") ?? 0
    let body = text.split(separator: "\n").dropLast().joined(separator: "\n")
    return (process.terminationStatus, status, body)
}
