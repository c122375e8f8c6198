import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A TCP proxy on 127.0.0.1 in front of a local port, for cutting one agent off the database
/// while its peers still reach it: `.pass` forwards, `.drop` closes every connection and every
/// new one at once, `.hang` keeps connections open but forwards nothing (a silent network).
final class TCPProxy: @unchecked Sendable {
    enum Mode { case pass, drop, hang }

    let port: Int
    private let targetPort: Int
    private let listener: Int32
    private let lock = NSLock()
    private var mode = Mode.pass
    private var closed = false

    init(targetPort: Int) throws {
        self.targetPort = targetPort
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 64) == 0 else { throw AgentProcessError(description: "proxy: cannot listen") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { self.acceptLoop() }
    }

    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    func set(_ new: Mode) {
        lock.withLock { mode = new }
    }

    private var current: Mode { lock.withLock { mode } }

    /// Stops accepting; open connections end at their next poll.
    func close() {
        lock.withLock {
            closed = true
            mode = .drop
        }
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else {
                if lock.withLock({ closed }) { return }
                continue
            }
            switch current {
            case .drop:
                Glibc.close(client)
            case .hang, .pass:
                let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var address = Self.loopback(port: targetPort)
                let connected = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                guard connected == 0 else {
                    Glibc.close(client)
                    Glibc.close(server)
                    continue
                }
                let pair = Pair(client: client, server: server)
                Thread.detachNewThread { self.pump(from: client, to: server, pair: pair) }
                Thread.detachNewThread { self.pump(from: server, to: client, pair: pair) }
            }
        }
    }

    /// Both ends of one proxied connection, closed once.
    private final class Pair: @unchecked Sendable {
        let client: Int32
        let server: Int32
        private let lock = NSLock()
        private var done = false

        init(client: Int32, server: Int32) {
            self.client = client
            self.server = server
        }

        func close() {
            let first = lock.withLock { () -> Bool in
                defer { done = true }
                return !done
            }
            guard first else { return }
            shutdown(client, Int32(SHUT_RDWR))
            shutdown(server, Int32(SHUT_RDWR))
            Glibc.close(client)
            Glibc.close(server)
        }
    }

    private func pump(from source: Int32, to destination: Int32, pair: Pair) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            switch current {
            case .drop:
                pair.close()
                return
            case .hang:
                usleep(50_000)
                continue
            case .pass:
                break
            }
            var descriptor = pollfd(fd: source, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 100) >= 0 else { pair.close(); return }
            guard descriptor.revents != 0, current == .pass else { continue }
            let count = read(source, &buffer, buffer.count)
            guard count > 0 else { pair.close(); return }
            var offset = 0
            while offset < count {
                let written = buffer[offset..<count].withUnsafeBytes { write(destination, $0.baseAddress, count - offset) }
                guard written > 0 else { pair.close(); return }
                offset += written
            }
        }
    }
}
