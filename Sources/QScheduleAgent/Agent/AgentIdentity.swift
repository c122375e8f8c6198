import Synchronization

/// Who this agent is to the outside: its advertised IP and bound port, i.e. the worker
/// address (`ip:port`) that the seed's workers endpoints talk about.
public final class AgentIdentity: Sendable {
    /// The advertised IP (configured `advertise_ip`, the listen IP, or detected).
    public let ip: IPAddress
    /// The advertised IP as configured or detected.
    public let ipText: String
    private let boundPort: Atomic<Int>

    init(ipText: String, port: Int) {
        self.ipText = ipText
        self.ip = IPAddress(ipText) ?? IPAddress("127.0.0.1")!
        self.boundPort = Atomic(port)
    }

    /// The port the HTTP interface listens on (the real one once bound, for `listen` port 0).
    public var port: Int { boundPort.load(ordering: .acquiring) }

    func setPort(_ port: Int) { boundPort.store(port, ordering: .releasing) }

    /// This worker's address as the seed writes it: `ip:port`.
    public var address: String { ListenAddress(host: ipText, port: port).description }

    /// Whether `address` is this host: the advertised IP, a local interface address, or loopback.
    public func isThisHost(_ address: IPAddress) -> Bool {
        let candidate = address.unmapped
        if candidate.isLoopback || candidate == ip.unmapped { return true }
        return HostInterfaces.addresses().contains { $0.unmapped == candidate }
    }

    /// Picks the advertised IP: `advertise_ip`, else a specific listen IP, else the first
    /// non-loopback IPv4 of the host, else 127.0.0.1.
    static func resolve(settings: AgentSettings) -> AgentIdentity {
        let ipText: String
        if let advertised = settings.advertiseIP {
            ipText = advertised
        } else if let listenIP = IPAddress(settings.listen.host), !listenIP.isUnspecified {
            ipText = settings.listen.host
        } else {
            ipText = HostInterfaces.primaryIPv4()?.description ?? "127.0.0.1"
        }
        return AgentIdentity(ipText: ipText, port: settings.listen.port)
    }
}
