#if canImport(Glibc)
import Glibc
#endif

/// How to start one job's command: argv, and the optional `cwd`, `env` and `user` of its
/// `[[job]]` entry.
public struct CommandSpec: Sendable, Equatable {
    /// argv; `argv[0]` is a path (contains `/`) or a name looked up in `PATH`.
    public var argv: [String]
    public var workingDirectory: String?
    /// Added to (and overriding) the agent's environment; `QSCHEDULE_*` always win.
    public var environment: [String: String]
    /// The account the command runs as (the agent must be root); `nil` = the agent's.
    public var user: UserAccount?

    public init(argv: [String], workingDirectory: String? = nil, environment: [String: String] = [:], user: UserAccount? = nil) {
        self.argv = argv
        self.workingDirectory = workingDirectory
        self.environment = environment
        self.user = user
    }
}

/// A local account resolved from its name with `getpwnam` and `getgrouplist`.
public struct UserAccount: Sendable, Equatable {
    public var name: String
    public var uid: UInt32
    public var gid: UInt32
    public var groups: [UInt32]
    public var home: String

    /// Looks `name` up in the system's user database; `nil` when there is no such user.
    public static func lookup(_ name: String) -> UserAccount? {
        guard let entry = getpwnam(name) else { return nil }
        let uid = entry.pointee.pw_uid
        let gid = entry.pointee.pw_gid
        let home = String(cString: entry.pointee.pw_dir)
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            _ = getgrouplist(name, gid, &groups, &count)
        }
        return UserAccount(name: name, uid: uid, gid: gid, groups: Array(groups.prefix(Int(max(0, count)))), home: home)
    }
}
