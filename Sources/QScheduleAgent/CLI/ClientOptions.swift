import ArgumentParser
import Foundation

/// Options of every client command: which server to ask (the local agent from `--config`,
/// or any `--server` speaking the seed interface), with which token, and how to print.
struct ClientOptions: ParsableArguments {
    @Option(name: [.customShort("c"), .customLong("config")], help: ArgumentHelp(
        "agent.conf with the address and token of the local agent (default: ./agent.conf if it exists, else /etc/qagent/agent.conf).",
        valueName: "file"))
    var explicitConfig: String?

    /// The local agent's configuration (see ``ConfigPath``).
    func loadConfig() throws -> AgentConfig { try ConfigPath.load(explicitConfig) }

    @Option(help: ArgumentHelp("Ask this server instead of the local agent: an agent or a central server, e.g. http://10.0.0.5:20010.", valueName: "url"))
    var server: String?

    @Option(help: ArgumentHelp("Q-Server-Token for --server (default: $QAGENT_TOKEN, else the token in --config).", valueName: "token"))
    var token: String?

    @Option(name: .customLong("request-timeout"), help: ArgumentHelp("Seconds to wait for connecting and for each part of an answer.", valueName: "seconds"))
    var requestTimeout: Double = 10

    @Option(help: ArgumentHelp(
        "CA certificate(s), PEM, to verify an https:// agent or server with (default: the system's trust store).", valueName: "file"))
    var cacert: String?

    @Option(help: ArgumentHelp("Client certificate, PEM, for an agent that requires mutual TLS (tls_client_ca); with --key.", valueName: "file"))
    var cert: String?

    @Option(help: ArgumentHelp("The client certificate's private key, PEM.", valueName: "file"))
    var key: String?

    @Flag(help: "Print the server's answer as JSON (the whole seed envelope), one line.")
    var json = false

    /// The same server, printing nothing of its own (polling inside a command).
    static func quiet(_ options: ClientOptions) -> ClientOptions {
        var copy = options
        copy.json = false
        return copy
    }

    /// For drain and resume, which wait while the agent asks the central scheduler: the
    /// request timeout is raised to cover those calls (and a verification read) when the
    /// local config names a `[scheduler]`.
    func waitingForCentral() -> ClientOptions {
        guard server == nil, let scheduler = (try? loadConfig())?.scheduler else { return self }
        var copy = self
        copy.requestTimeout = max(requestTimeout, Double(scheduler.timeout * 4 + 5))
        return copy
    }

    /// Exit statuses shared by the client commands, for `--help` texts.
    static let exitCodes = "Exit status: 0 done, 1 the server refused (ret:false; its message is printed), 2 error (bad arguments, unreachable server, timeout, an answer that is not JSON)."

    /// `--cacert`, `--cert`, `--key`, checked: readable, the last two together.
    func clientTLS() throws -> ClientTLSSettings {
        for (option, path) in [("--cacert", cacert), ("--cert", cert), ("--key", key)] {
            if let path, !FileManager.default.isReadableFile(atPath: path) { throw CLIFailure("\(option): cannot read \"\(path)\"") }
        }
        guard (cert == nil) == (key == nil) else { throw CLIFailure(cert == nil ? "--key needs --cert" : "--cert needs --key") }
        return ClientTLSSettings(caFile: cacert, certificateFile: cert, keyFile: key)
    }

    /// A client of the chosen server; throws ``CLIFailure`` (exit 2) when none can be built.
    func client() throws -> SeedClient {
        let tls = try clientTLS()
        let environmentToken = ProcessInfo.processInfo.environment["QAGENT_TOKEN"]?
            .split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces) }
        if let server {
            guard let url = URL(string: server), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", url.host != nil else {
                throw CLIFailure("--server must be an http:// or https:// URL, got \"\(server)\"")
            }
            let chosen = token ?? environmentToken ?? (try? loadConfig())?.agent.tokens.first
            guard let chosen, !chosen.isEmpty else {
                throw CLIFailure("--server needs a token: --token, QAGENT_TOKEN, or a readable --config")
            }
            return SeedClient(baseURL: url, token: chosen, timeout: requestTimeout, tls: tls)
        }
        let loaded: AgentConfig
        do {
            loaded = try loadConfig()
        } catch {
            throw CLIFailure("\(error)")
        }
        var settings = loaded.agent
        if let token { settings.tokens = [token] }
        return SeedClient(settings: settings, timeout: requestTimeout, tls: tls)
    }

    /// Runs one request: a `ret:false` answer prints the message and exits 1; a transport
    /// problem or an answer that is not an envelope prints why and exits 2. With `--json`
    /// the envelope is printed whatever it says.
    /// `refusalExit` replaces 1 for commands whose 1 means something else (`check`: busy);
    /// `onRefusal` prints more about a refusal before the exit.
    func call(
        refusalExit: Int32 = 1,
        onRefusal: (SeedClient.Answer) -> Void = { _ in },
        _ request: (SeedClient) async throws -> SeedClient.Answer
    ) async throws -> SeedClient.Answer {
        do {
            let answer = try await request(try client())
            if json { print(answer.envelope.jsonText) }
            guard answer.ret else {
                if !json {
                    printError("\(answer.message ?? "refused")\(answer.reason.map { " (\($0))" } ?? "")")
                    onRefusal(answer)
                }
                throw ExitCode(refusalExit)
            }
            return answer
        } catch let exit as ExitCode {
            throw exit
        } catch {
            printError("\(error)")
            throw ExitCode(2)
        }
    }
}

/// A client-side problem: printed, exit status 2.
struct CLIFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Prints `qagent: message` on standard error.
func printError(_ message: String) {
    FileHandle.standardError.write(Data("qagent: \(message)\n".utf8))
}
