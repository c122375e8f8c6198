import Foundation
import NIOSSL
import Testing
@testable import QScheduleAgent

/// HTTPS and mutual TLS on the listener (`tls_cert`, `tls_key`, `tls_client_ca`), against the
/// real binary, with certificates made by openssl at test time and two independent clients:
/// the agent's own (the CLI, AsyncHTTPClient on BoringSSL) and curl (OpenSSL).
@Suite("TLS")
struct TLSTests {
    static let job = """
        [[job]]
        name = "t.echo"
        command = ["/bin/echo", "over tls"]

        """

    @Test("mutual TLS: a client certificate from the client CA is served; none, or one from another CA, is refused at the handshake; a client that does not trust the agent's CA refuses it; plain HTTP gets a 400 and the port keeps serving")
    func mutualTLS() async throws {
        let certs = try TestCertificates.make()
        defer { certs.remove() }
        let agent = try await AgentProcess.start(jobs: Self.job, agentExtra: certs.agentLines(mutual: true))
        defer { try? FileManager.default.removeItem(atPath: agent.dataDir) }
        defer { agent.killNow() }
        let url = "https://127.0.0.1:\(agent.port)"
        let config = try agent.cliConfig()
        let withClient = ["--cacert", certs.caFile, "--cert", certs.clientCert, "--key", certs.clientKey]

        // The CLI, with the CA and a client certificate: served (the address is https from the config).
        var run = try await AgentProcess.runCLI(["status", "--config", config] + withClient)
        #expect(run.status == 0 && run.output.contains("taking work"), "\(run.output)")
        run = try await AgentProcess.runCLI(["trigger", "t.echo", "--wait", "--config", config] + withClient)
        #expect(run.status == 0, "\(run.output)")
        // No client certificate: refused.
        run = try await AgentProcess.runCLI(["status", "--config", config, "--cacert", certs.caFile])
        #expect(run.status == 2 && run.output.contains("the server requires a client certificate"), "\(run.output)")
        // A client certificate from another CA: refused.
        run = try await AgentProcess.runCLI(["status", "--config", config, "--cacert", certs.caFile, "--cert", certs.otherClientCert, "--key", certs.otherClientKey])
        #expect(run.status == 2 && run.output.contains("TLS with \(url)"), "\(run.output)")
        // A client that trusts another CA refuses the agent's certificate.
        run = try await AgentProcess.runCLI(["status", "--config", config, "--cacert", certs.otherCAFile, "--cert", certs.clientCert, "--key", certs.clientKey])
        #expect(run.status == 2 && run.output.contains("not signed by a trusted CA"), "\(run.output)")
        // Bad options: exit 2 before any connection.
        run = try await AgentProcess.runCLI(["status", "--config", config, "--cert", certs.clientCert])
        #expect(run.status == 2 && run.output.contains("--cert needs --key"), "\(run.output)")
        run = try await AgentProcess.runCLI(["status", "--config", config, "--cacert", certs.dir + "/missing.pem"])
        #expect(run.status == 2 && run.output.contains("--cacert: cannot read"), "\(run.output)")

        // curl (OpenSSL) agrees.
        let status = url + "/api2/agent/status.do"
        var answer = try curl(status, ["--cacert", certs.caFile, "--cert", certs.clientCert, "--key", certs.clientKey])
        #expect(answer.exit == 0 && answer.status == 200 && answer.body.contains("\"ret\":true"), "\(answer)")
        answer = try curl(status, ["--cacert", certs.caFile])
        #expect(answer.exit != 0 && answer.status == 0, "no client certificate: \(answer)")
        answer = try curl(status, ["--cacert", certs.caFile, "--cert", certs.otherClientCert, "--key", certs.otherClientKey])
        #expect(answer.exit != 0 && answer.status == 0, "client certificate from another CA: \(answer)")
        answer = try curl(status, ["--cacert", certs.otherCAFile, "--cert", certs.clientCert, "--key", certs.clientKey])
        #expect(answer.exit == 60, "curl's 'peer certificate cannot be authenticated': \(answer)")
        // Plain HTTP to the HTTPS port: one 400 with the envelope, then the connection is closed.
        answer = try curl("http://127.0.0.1:\(agent.port)/api2/agent/status.do")
        #expect(answer.status == 400 && answer.body == #"{"message":"参数错误","reason":"tls_required","ret":false}"#, "\(answer)")
        // The refusals changed nothing: still served, nothing ran.
        answer = try curl(status, ["--cacert", certs.caFile, "--cert", certs.clientCert, "--key", certs.clientKey])
        #expect(answer.status == 200 && answer.body.contains("\"running\":0"), "\(answer)")
        #expect(!agent.log.contains("test-token-0000001"), "the token appears in the agent's log")
    }

    @Test("HTTPS without a client CA: any client that trusts the agent's CA is served, with or without a certificate")
    func serverOnlyTLS() async throws {
        let certs = try TestCertificates.make()
        defer { certs.remove() }
        let agent = try await AgentProcess.start(jobs: Self.job, agentExtra: certs.agentLines(mutual: false))
        defer { try? FileManager.default.removeItem(atPath: agent.dataDir) }
        defer { agent.killNow() }
        let transport = HTTPTransport(timeout: 10, tls: ClientTLSSettings(caFile: certs.caFile))
        let reply = try await transport.send("GET", URL(string: "https://127.0.0.1:\(agent.port)/api2/agent/status.do")!, token: testToken)
        #expect(reply.status == 200 && String(decoding: reply.body, as: UTF8.self).contains("\"ret\":true"))
        // By name: localhost is in the certificate; other.example (resolved to the same address) is not.
        #expect(try curl("https://localhost:\(agent.port)/api2/agent/status.do", ["--cacert", certs.caFile]).status == 200)
        let unnamed = try curl("https://other.example:\(agent.port)/api2/agent/status.do", ["--cacert", certs.caFile, "--resolve", "other.example:\(agent.port):127.0.0.1"])
        #expect(unnamed.exit == 60, "a name the certificate does not hold: \(unnamed)")
    }

    @Test("reload re-reads the certificate files: new connections get the new certificate; files that no longer load fail the reload and the old certificate stays")
    func reloadRotatesCertificates() async throws {
        let certs = try TestCertificates.make()
        defer { certs.remove() }
        // The agent's own copies of the files, rotated in place as a deploy would.
        let cert = certs.dir + "/live.pem", key = certs.dir + "/live.key"
        try FileManager.default.copyItem(atPath: certs.serverCert, toPath: cert)
        try FileManager.default.copyItem(atPath: certs.serverKey, toPath: key)
        let agent = try await AgentProcess.start(jobs: Self.job, agentExtra: "tls_cert = \"\(cert)\"\ntls_key = \"\(key)\"\n")
        defer { try? FileManager.default.removeItem(atPath: agent.dataDir) }
        defer { agent.killNow() }
        let status = "https://127.0.0.1:\(agent.port)/api2/agent/status.do"
        let config = try agent.cliConfig()
        #expect(try curl(status, ["--cacert", certs.caFile]).status == 200)
        #expect(try curl(status, ["--cacert", certs.otherCAFile]).exit == 60)

        func replace(_ path: String, with source: String) throws {
            try Data(contentsOf: URL(fileURLWithPath: source)).write(to: URL(fileURLWithPath: path))
        }
        try replace(cert, with: certs.otherServerCert)
        try replace(key, with: certs.otherServerKey)
        // Not yet reloaded: the old certificate is still served.
        #expect(try curl(status, ["--cacert", certs.caFile]).status == 200)
        var run = try await AgentProcess.runCLI(["reload", "--config", config, "--cacert", certs.caFile])
        #expect(run.status == 0, "\(run.output)")
        #expect(try curl(status, ["--cacert", certs.otherCAFile]).status == 200, "the new certificate is served")
        #expect(try curl(status, ["--cacert", certs.caFile]).exit == 60, "the old one is not")

        // A broken certificate file: the reload fails and changes nothing.
        try "not a certificate\n".write(toFile: cert, atomically: true, encoding: .utf8)
        run = try await AgentProcess.runCLI(["reload", "--config", config, "--cacert", certs.otherCAFile])
        #expect(run.status == 1 && run.output.contains("config_invalid") && run.output.contains("tls_cert"), "\(run.output)")
        #expect(try curl(status, ["--cacert", certs.otherCAFile]).status == 200, "the certificate in force stays")
        // A key that does not go with the certificate: refused the same way.
        try replace(cert, with: certs.otherServerCert)
        try replace(key, with: certs.clientKey)
        run = try await AgentProcess.runCLI(["reload", "--config", config, "--cacert", certs.otherCAFile])
        #expect(run.status == 1 && run.output.contains("does not go with"), "\(run.output)")
        #expect(try curl(status, ["--cacert", certs.otherCAFile]).status == 200)
    }

    @Test("[report] to an https:// receiver that requires a client certificate: delivered with ca_file, cert_file and key_file; without the certificate nothing is delivered and the outbox keeps the reports")
    func reportOverMutualTLS() async throws {
        let certs = try TestCertificates.make()
        defer { certs.remove() }
        var serverTLS = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certs.serverCert).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: certs.serverKey, format: .pem)))
        serverTLS.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certs.caFile))
        serverTLS.certificateVerification = .noHostnameVerification
        let receiver = try await FakeUpstream.start(tls: serverTLS)
        defer { Task { await receiver.stop() } }
        func jobs(_ tlsLines: String) -> String {
            ReportOutboxTests.jobs(reportURL: receiver.reportURL, extra: tlsLines)
        }
        // Without a client certificate: the receiver refuses the handshake; the reports wait.
        try await InProcessAgent.with(jobs: jobs("ca_file = \"\(certs.caFile)\"")) { agent in
            _ = try await ReportOutboxTests.dispatch(agent, 3)
            #expect(try await eventually { try await ReportOutboxTests.report(agent)["consecutiveFailures"]?.intValue ?? 0 >= 2 })
            let report = try await ReportOutboxTests.report(agent)
            #expect(report["depth"]?.intValue == 3)
            #expect(report["lastError"]?.stringValue?.contains("TLS with \(receiver.reportURL) failed") == true, "\(report)")
            #expect(receiver.state.reports.isEmpty)
        }
        // With it: delivered.
        try await InProcessAgent.with(jobs: jobs("ca_file = \"\(certs.caFile)\"\ncert_file = \"\(certs.clientCert)\"\nkey_file = \"\(certs.clientKey)\"")) { agent in
            let ids = try await ReportOutboxTests.dispatch(agent, 3)
            #expect(await eventually(seconds: 60) { Set(receiver.state.reportIDs).isSuperset(of: Set(ids)) })
            #expect(try await eventually { try await ReportOutboxTests.report(agent)["depth"]?.intValue == 0 })
        }
    }

    @Test("bad TLS settings are named with file:line and stop the start; a key others can read is a warning, an error when strict")
    func badSettings() async throws {
        let certs = try TestCertificates.make()
        defer { certs.remove() }
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func load(_ agentLines: String, tail: String = "") throws -> AgentConfig {
            try ConfigLoader.parse(agentTOML(dataDir: dir, extra: agentLines) + tail, fileName: "agent.conf", baseDirectory: dir)
        }
        func problem(_ agentLines: String, tail: String = "") -> String {
            do {
                _ = try load(agentLines, tail: tail)
                return "loaded"
            } catch {
                return "\(error)"
            }
        }
        #expect(problem("tls_cert = \"\(certs.serverCert)\"") == "agent.conf:8: [agent] tls_cert: needs tls_key (the certificate's private key)")
        #expect(problem("tls_key = \"\(certs.serverKey)\"") == "agent.conf:8: [agent] tls_key: needs tls_cert (the certificate it belongs to)")
        #expect(problem("tls_client_ca = \"\(certs.caFile)\"") == "agent.conf:8: [agent] tls_client_ca: needs tls_cert and tls_key: mutual TLS is TLS first")
        #expect(problem("tls_cert = \"missing.pem\"\ntls_key = \"\(certs.serverKey)\"") == "agent.conf:8: [agent] tls_cert: cannot read \"\(dir)/missing.pem\"")
        #expect(problem("tls_cert = \"\"") == "agent.conf:8: [agent] tls_cert: must not be empty")
        #expect(problem("", tail: "[report]\nurl = \"https://127.0.0.1:1/r\"\ncert_file = \"\(certs.clientCert)\"\n")
            == "agent.conf:11: [report] cert_file: needs key_file (the certificate's private key)")
        #expect(problem("", tail: "[scheduler]\nurl = \"https://127.0.0.1:1\"\nca_file = \"nope.pem\"\n")
            == "agent.conf:11: [scheduler] ca_file: cannot read \"\(dir)/nope.pem\"")

        // Loads, but the files are not what they claim: the agent does not start (ConfigError).
        func startProblem(_ agentLines: String) throws -> String {
            do {
                _ = try Agent(config: try load(agentLines), logger: testLogger())
                return "started"
            } catch {
                return "\(error)"
            }
        }
        #expect(try startProblem("tls_cert = \"\(certs.serverKey)\"\ntls_key = \"\(certs.serverKey)\"").contains("[agent] tls_cert \"\(certs.serverKey)\": "))
        #expect(try startProblem("tls_cert = \"\(certs.serverCert)\"\ntls_key = \"\(certs.clientKey)\"").contains("does not go with tls_cert"))

        // qagent config check loads the files as the agent would.
        func check(_ agentLines: String, tail: String = "") throws -> [String] {
            let path = dir + "/check.conf"
            try (agentTOML(dataDir: dir, extra: agentLines) + tail).write(toFile: path, atomically: true, encoding: .utf8)
            return ConfigCheck.check(path: path, environment: [:]).findings.map { "\($0.location): \($0.text)" }
        }
        #expect(try check(certs.agentLines(mutual: true)).isEmpty)
        #expect(try check("tls_cert = \"\(certs.serverKey)\"\ntls_key = \"\(certs.serverKey)\"") .first?.hasPrefix("\(dir)/check.conf:8: [agent] tls_cert \"\(certs.serverKey)\": not a PEM certificate") == true)
        let mismatched = try check("", tail: "[report]\nurl = \"https://127.0.0.1:1/r\"\ncert_file = \"\(certs.clientCert)\"\nkey_file = \"\(certs.serverKey)\"\n")
        #expect(mismatched.count == 1 && mismatched[0].hasPrefix("\(dir)/check.conf:11: [report] key_file \"\(certs.serverKey)\" does not go with cert_file"), "\(mismatched)")

        // Secrets hygiene: a key file others can read.
        let exposed = certs.dir + "/exposed.key"
        try FileManager.default.copyItem(atPath: certs.serverKey, toPath: exposed)
        chmod(exposed, 0o644)
        let warned = try load("tls_cert = \"\(certs.serverCert)\"\ntls_key = \"\(exposed)\"")
        #expect(warned.warnings.count == 1 && warned.warnings[0].contains("[agent] tls_key: \"\(exposed)\" is readable or writable by group or others (mode 0644)"), "\(warned.warnings)")
        #expect(problem("strict_permissions = true\ntls_cert = \"\(certs.serverCert)\"\ntls_key = \"\(exposed)\"").contains("tls_key: \"\(exposed)\" is readable"))
        #expect(problem("strict_permissions = true", tail: "[report]\nurl = \"https://127.0.0.1:1/r\"\ncert_file = \"\(certs.clientCert)\"\nkey_file = \"\(exposed)\"\n")
            .contains("[report] key_file: \"\(exposed)\" is readable"))
    }
}
