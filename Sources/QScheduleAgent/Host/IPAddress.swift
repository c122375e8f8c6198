#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 literal, parsed with `inet_pton` and kept in its canonical form, so that
/// `::1`, `0:0::1` and `0000::0001` compare equal.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// Raw network-order bytes: 4 for IPv4, 16 for IPv6.
    public let bytes: [UInt8]

    /// Parses a literal; `nil` for anything that is not an IPv4/IPv6 literal (host names too).
    public init?(_ text: String) {
        guard !text.isEmpty, text.utf8.count <= 64 else { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            bytes = withUnsafeBytes(of: &v6) { Array($0) }
            return
        }
        return nil
    }

    init(rawBytes: [UInt8]) {
        bytes = rawBytes
    }

    /// True for 127.0.0.0/8 and ::1.
    public var isLoopback: Bool {
        if bytes.count == 4 { return bytes[0] == 127 }
        return bytes == [UInt8](repeating: 0, count: 15) + [1]
    }

    /// True for 0.0.0.0 and ::.
    public var isUnspecified: Bool { bytes.allSatisfy { $0 == 0 } }

    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as its IPv4 form; otherwise itself.
    var unmapped: IPAddress {
        if bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            return IPAddress(rawBytes: Array(bytes[12...]))
        }
        return self
    }

    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var copy = bytes
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        let result = copy.withUnsafeMutableBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        guard result != nil else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// The addresses of this host's network interfaces, read with `getifaddrs`.
public enum HostInterfaces {
    /// Every IPv4/IPv6 address currently configured on a local interface.
    public static func addresses() -> [IPAddress] {
        var head: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&head) == 0, let first = head else { return [] }
        defer { freeifaddrs(head) }
        var result: [IPAddress] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let sockaddrPointer = entry.pointee.ifa_addr else { continue }
            switch Int32(sockaddrPointer.pointee.sa_family) {
            case AF_INET:
                let bytes = sockaddrPointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                    withUnsafeBytes(of: pointer.pointee.sin_addr) { Array($0) }
                }
                result.append(IPAddress(rawBytes: bytes))
            case AF_INET6:
                let bytes = sockaddrPointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                    withUnsafeBytes(of: pointer.pointee.sin6_addr) { Array($0) }
                }
                result.append(IPAddress(rawBytes: bytes))
            default:
                continue
            }
        }
        return result
    }

    /// The first non-loopback IPv4 address, used as the advertised IP when none is configured.
    public static func primaryIPv4() -> IPAddress? {
        addresses().first { $0.bytes.count == 4 && !$0.isLoopback && !$0.isUnspecified }
    }
}
