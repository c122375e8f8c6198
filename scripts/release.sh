#!/usr/bin/env bash
# Builds a qagent release into .build/release-artifacts (or --out DIR):
#   qagent                   the binary: Swift runtime linked statically, stripped
#   qagent.debug             its debug symbols (objcopy --only-keep-debug; gdb finds them
#                            through the binary's .gnu_debuglink)
#   qagent-V-linux-ARCH.tar.gz   the binary, agent.conf.example, the systemd unit, README, CHANGELOG
#   qagent_V_ARCH.deb        /usr/bin/qagent, /etc/qagent/agent.conf (conffile), the unit, a
#                            `qagent` system user owning /var/lib/qagent, a generated token
# and prints the binary's size and `ldd`, and checks that it runs with `env -i` from outside
# the toolchain. `--binary PATH` packages an existing binary instead of building (the tests
# package the debug build that way, to stay fast). Needs only what the build needs, plus
# binutils and dpkg-deb (both on any Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
out=".build/release-artifacts"
binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: scripts/release.sh [--binary PATH] [--out DIR]" >&2; exit 2 ;;
  esac
done
version=$(sed -n 's/.*static let current = "\(.*\)".*/\1/p' Sources/QScheduleAgent/Agent/AgentVersion.swift)
arch=$(dpkg --print-architecture)
mkdir -p "$out"
out=$(cd "$out" && pwd)

# Where the Swift toolchain lives (its runtime libraries must not be needed by a release).
toolchain=$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")
given="$binary"
if [ -z "$binary" ]; then
  commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  git diff --quiet HEAD -- 2>/dev/null || commit="$commit-dirty"
  built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  info=Sources/QScheduleAgent/Agent/BuildInfo.swift
  cp "$info" "$out/BuildInfo.swift.saved"
  trap 'cp "$out/BuildInfo.swift.saved" "$info" && rm -f "$out/BuildInfo.swift.saved"' EXIT
  printf '// Written by scripts/release.sh for this build; restored afterwards.\nenum BuildInfo {\n    static let commit = "%s"\n    static let date = "%s"\n}\n' \
    "$commit" "$built" > "$info"
  swift build -c release --static-swift-stdlib --product qagent -Xswiftc -g
  binary="$(swift build -c release --show-bin-path)/qagent"
fi

# The binary, stripped, with its symbols apart.
cp "$binary" "$out/qagent"
objcopy --only-keep-debug "$out/qagent" "$out/qagent.debug"
strip --strip-all "$out/qagent"
(cd "$out" && objcopy --add-gnu-debuglink=qagent.debug qagent)
echo "binary: $out/qagent, $(stat -c %s "$out/qagent") bytes (debug symbols: $(stat -c %s "$out/qagent.debug") bytes)"
echo "ldd:"
ldd "$out/qagent" | sed 's/^/  /'

# It must run where no toolchain is: from another folder, nothing in the environment.
probe=$(mktemp -d)
cp "$out/qagent" "$probe/"
if ldd "$out/qagent" | grep -q "$toolchain\|not found"; then
  if [ -z "$given" ]; then
    echo "release: the binary needs libraries of the toolchain (see ldd above)" >&2
    exit 1
  fi
  echo "release: warning: $binary needs the toolchain's libraries: a package for tests, not for hosts" >&2
else
  echo "env -i: $(env -i LD_LIBRARY_PATH= "$probe/qagent" --version)"
fi
rm -rf "$probe"

# The tarball.
name="qagent-$version-linux-$arch"
rm -rf "$out/$name"
mkdir -p "$out/$name"
cp "$out/qagent" agent.conf.example docs/qagent.service README.md CHANGELOG.md "$out/$name/"
tar -C "$out" -cf - "$name" | gzip ${QAGENT_GZIP_LEVEL:--9} > "$out/$name.tar.gz"
rm -rf "$out/$name"
echo "tarball: $out/$name.tar.gz"

# The Debian package.
pkg="$out/deb"
rm -rf "$pkg"
mkdir -p "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/etc/qagent" "$pkg/lib/systemd/system" "$pkg/usr/share/doc/qagent"
install -m 755 "$out/qagent" "$pkg/usr/bin/qagent"
install -m 644 packaging/debian/agent.conf "$pkg/etc/qagent/agent.conf"
# The packaged unit runs as the qagent user (a drop-in with User=root lets jobs use `user`).
sed -e 's#/usr/local/bin/qagent#/usr/bin/qagent#' -e 's#file:///opt/qagent/README.md#file:///usr/share/doc/qagent/README.md#' \
    -e 's#^User=root$#User=qagent\nGroup=qagent#' docs/qagent.service > "$pkg/lib/systemd/system/qagent.service"
install -m 644 agent.conf.example README.md CHANGELOG.md "$pkg/usr/share/doc/qagent/"
install -m 755 packaging/debian/postinst packaging/debian/postrm "$pkg/DEBIAN/"
echo /etc/qagent/agent.conf > "$pkg/DEBIAN/conffiles"
# Depends: the packages holding exactly the shared libraries the binary names (its NEEDED
# entries; their own dependencies are their packages' business), and passwd (useradd, for the
# postinst).
needed=$(readelf -d "$out/qagent" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
depends=$(for soname in $needed; do
  path=$(ldd "$out/qagent" | awk -v so="$soname" '$1 == so { print $3 }')
  case "$path" in "$toolchain"/*) continue ;; esac
  [ -n "$path" ] || path=$(ldconfig -p | awk -v so="$soname" '$1 == so { print $NF; exit }')
  dpkg -S "$path" 2>/dev/null || dpkg -S "$(readlink -f "$path")" 2>/dev/null || { echo "release: no package holds $soname ($path)" >&2; exit 1; }
done | cut -d: -f1 | sort -u | while read -r package; do
  echo "$package (>= $(dpkg-query -W -f '${Version}' "$package" | sed 's/-[^-]*$//'))"
done | paste -sd, | sed 's/,/, /g')
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: qagent
Version: $version
Architecture: $arch
Maintainer: qagent developers <qagent@localhost>
Section: admin
Priority: optional
Installed-Size: $(du -sk "$pkg" | cut -f1)
Depends: $depends, passwd
Description: QSchedule worker-side agent
 Runs the jobs registered on this host, records and reports each task, fires cron jobs
 standalone or as one of a cluster of agents sharing PostgreSQL, and serves the seed's
 HTTP interface. See /usr/share/doc/qagent/README.md.
CONTROL
# QAGENT_DEB_COMPRESSION (e.g. "-Zgzip -z1", for tests): dpkg-deb's default is xz.
# shellcheck disable=SC2086
dpkg-deb --root-owner-group ${QAGENT_DEB_COMPRESSION:-} --build "$pkg" "$out/qagent_${version}_${arch}.deb" >/dev/null
rm -rf "$pkg"
echo "package: $out/qagent_${version}_${arch}.deb (Depends: $depends, passwd)"
