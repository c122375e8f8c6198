import Foundation
import Testing
@testable import QScheduleAgent

/// `scripts/release.sh`'s Debian package, installed with dpkg into a throwaway root (its
/// maintainer scripts run chrootless, on `DPKG_ROOT`), then `qagent config check` and
/// `qagent run` inside that root (chroot, as the `qagent` user the package created). The
/// package is built from the debug binary (`--binary`), so CI does not pay for a release
/// build; the release build itself is `scripts/release.sh` without arguments.
@Suite("Release: the Debian package", .serialized, .enabled(if: geteuid() == 0, "installs into a chroot: needs root"))
struct ReleasePackageTests {
    static let root = ConfigLoaderTests.repositoryRoot.path

    static func sh(_ command: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command + " 2>&1"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test("the .deb installs: /usr/bin/qagent, /etc/qagent/agent.conf as a conffile, the unit, the qagent user owning /var/lib/qagent, a private token; config check and run work inside the root; purge removes the state")
    func installs() async throws {
        let work = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let binary = Self.root + "/.build/debug/qagent"
        let built = try Self.sh("cd \(Self.root) && QAGENT_DEB_COMPRESSION='-Zgzip -z1' QAGENT_GZIP_LEVEL=-1 scripts/release.sh --binary \(binary) --out \(work)/out")
        #expect(built.status == 0, "\(built.output)")
        let deb = work + "/out/qagent_\(AgentVersion.current)_amd64.deb"
        #expect(built.output.contains("package: \(deb) (Depends: libc6 (>= "), "\(built.output)")
        #expect(try Self.sh("dpkg-deb -I \(deb) conffiles").output == "/etc/qagent/agent.conf\n")
        let unit = try Self.sh("dpkg-deb --fsys-tarfile \(deb) | tar -xOf - ./lib/systemd/system/qagent.service").output
        #expect(unit.contains("ExecStart=/usr/bin/qagent run --config /etc/qagent/agent.conf") && unit.contains("User=qagent\nGroup=qagent"))
        #expect(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"))

        // A throwaway root with an empty dpkg database and a passwd file.
        let root = work + "/root"
        for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "etc", "tmp"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(dir)", withIntermediateDirectories: true)
        }
        FileManager.default.createFile(atPath: root + "/var/lib/dpkg/status", contents: nil)
        try "root:x:0:0:root:/root:/bin/sh\n".write(toFile: root + "/etc/passwd", atomically: true, encoding: .utf8)
        try "root:x:0:\n".write(toFile: root + "/etc/group", atomically: true, encoding: .utf8)
        try "root:*:19000:0:99999:7:::\n".write(toFile: root + "/etc/shadow", atomically: true, encoding: .utf8)
        try "root:*::\n".write(toFile: root + "/etc/gshadow", atomically: true, encoding: .utf8)
        // --force-depends: the throwaway root's dpkg database knows none of the libraries.
        let installed = try Self.sh("dpkg --root=\(root) --force-script-chrootless --force-depends --log=/dev/null -i \(deb)")
        #expect(installed.status == 0, "\(installed.output)")
        let passwd = try String(contentsOfFile: root + "/etc/passwd", encoding: .utf8)
        let qagent = try #require(passwd.split(separator: "\n").first { $0.hasPrefix("qagent:") }?.split(separator: ":", omittingEmptySubsequences: false))
        let (uid, gid) = (try #require(UInt32(qagent[2])), try #require(UInt32(qagent[3])))
        #expect(qagent[6] == "/usr/sbin/nologin")
        let state = try FileManager.default.attributesOfItem(atPath: root + "/var/lib/qagent")
        #expect((state[.ownerAccountID] as? NSNumber)?.uint32Value == uid)
        let token = try FileManager.default.attributesOfItem(atPath: root + "/etc/qagent/token")
        #expect((token[.posixPermissions] as? NSNumber)?.intValue == 0o600 && (token[.ownerAccountID] as? NSNumber)?.uint32Value == uid)
        #expect(try String(contentsOfFile: root + "/etc/qagent/token", encoding: .utf8).count == 33)

        // The libraries the binary loads, copied in, so it runs inside the root.
        let copied = try Self.sh("ldd \(root)/usr/bin/qagent | awk '/=>/ { print $3 } /^\\t\\// { print $1 }' | while read -r lib; do mkdir -p \(root)$(dirname $lib) && cp -L $lib \(root)$lib; done")
        #expect(copied.status == 0, "\(copied.output)")
        // Swift reads its arguments from /proc/self/cmdline, and the agent reads /proc for its tasks' processes.
        try FileManager.default.createDirectory(atPath: root + "/proc", withIntermediateDirectories: true)
        let mounted = try Self.sh("mount --bind /proc \(root)/proc")
        #expect(mounted.status == 0, "\(mounted.output)")
        defer { _ = try? Self.sh("umount -l \(root)/proc") }
        let check = try Self.sh("chroot --userspec=\(uid):\(gid) \(root) /usr/bin/qagent config check")
        #expect(check.status == 0 && check.output == "/etc/qagent/agent.conf: ok, 0 jobs\n", "\(check.output)")
        // Run inside the root as the qagent user, on another port than the default.
        let conf = try String(contentsOfFile: root + "/etc/qagent/agent.conf", encoding: .utf8)
        try conf.replacingOccurrences(of: "127.0.0.1:20010", with: "127.0.0.1:0").write(toFile: root + "/etc/qagent/agent.conf", atomically: true, encoding: .utf8)
        let run = Process()
        run.executableURL = URL(fileURLWithPath: "/usr/sbin/chroot")
        run.arguments = ["--userspec=\(uid):\(gid)", root, "/usr/bin/qagent", "run"]
        let logPath = work + "/run.log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        run.standardOutput = log
        run.standardError = log
        try run.run()
        defer { if run.isRunning { kill(run.processIdentifier, SIGKILL) } }
        #expect(await eventually(seconds: 20) { ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").contains("qagent listening") })
        let store = try FileManager.default.attributesOfItem(atPath: root + "/var/lib/qagent/qagent.sqlite")
        #expect((store[.ownerAccountID] as? NSNumber)?.uint32Value == uid)
        kill(run.processIdentifier, SIGTERM)
        #expect(await eventually(seconds: 20) { !run.isRunning })
        #expect(run.terminationStatus == 0, "\((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")")
        // Purge removes the state and the token (and the binary, like any package file).
        _ = try? Self.sh("umount -l \(root)/proc")
        let purged = try Self.sh("dpkg --root=\(root) --force-script-chrootless --log=/dev/null --purge qagent")
        #expect(purged.status == 0, "\(purged.output)")
        #expect(!FileManager.default.fileExists(atPath: root + "/var/lib/qagent"))
        #expect(!FileManager.default.fileExists(atPath: root + "/usr/bin/qagent"))
    }
}
