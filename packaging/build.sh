#!/bin/sh
# packaging/build.sh deb|dist VERSION BIN OUTDIR
# deb:  OUTDIR/geodns_<version>_<arch>.deb, built with dpkg-deb.
# dist: OUTDIR/geodns-<version>-linux-<arch>.tar.gz, the static binary with
#       the same unit, config, man page, completions and docs, for other
#       distributions.
set -eu
kind=$1 version=$2 bin=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
arch=$(go env GOARCH)
mkdir -p "$out"
stage=$(mktemp -d)
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT

# install_tree ROOT BINDIR: the files of an installation under ROOT.
install_tree() {
	root=$1
	install -D -m 0755 "$bin" "$root/$2/geodns"
	install -D -m 0644 "$here/geodns.yaml" "$root/etc/geodns/geodns.yaml"
	install -d -m 0755 "$root/etc/geodns/zones"
	install -D -m 0644 "$here/geodns.service" "$root/lib/systemd/system/geodns.service"
	install -D -m 0644 "$here/completion/geodns.bash" "$root/usr/share/bash-completion/completions/geodns"
	install -D -m 0644 "$here/completion/_geodns" "$root/usr/share/zsh/vendor-completions/_geodns"
	install -d -m 0755 "$root/usr/share/man/man1" "$root/usr/share/doc/geodns"
	gzip -9n <"$here/geodns.1" >"$root/usr/share/man/man1/geodns.1.gz"
	install -m 0644 "$here/copyright" "$root/usr/share/doc/geodns/copyright"
	for f in "$top/README.md" "$top/CHANGELOG.md" "$top"/docs/*.md; do
		gzip -9n <"$f" >"$root/usr/share/doc/geodns/$(basename "$f").gz"
	done
}

case $kind in
deb)
	# Debian versions sort ~ before anything: 0.1.0~dev+abc before 0.1.0.
	debver=$(echo "$version" | sed 's/^v//; s/-dev/~dev/; s/-/./g')
	install_tree "$stage" usr/bin
	# Debian's names: a native package's changelog.gz is a Debian
	# changelog (it points to CHANGELOG.md.gz), and the binary is static on
	# purpose (Go, CGO off), said to lintian.
	when=$(date -u -R ${SOURCE_DATE_EPOCH:+-d @$SOURCE_DATE_EPOCH})
	printf 'geodns (%s) unstable; urgency=medium\n\n  * Release %s: see /usr/share/doc/geodns/CHANGELOG.md.gz.\n\n -- geodns authors <geodns@example.org>  %s\n' \
		"$debver" "$version" "$when" | gzip -9n >"$stage/usr/share/doc/geodns/changelog.gz"
	install -D -m 0644 /dev/null "$stage/usr/share/lintian/overrides/geodns"
	echo "geodns: statically-linked-binary [usr/bin/geodns]" >"$stage/usr/share/lintian/overrides/geodns"
	install -d "$stage/DEBIAN"
	install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$stage/DEBIAN/"
	echo /etc/geodns/geodns.yaml >"$stage/DEBIAN/conffiles"
	cat >"$stage/DEBIAN/control" <<CONTROL
Package: geodns
Version: $debver
Architecture: $arch
Maintainer: geodns authors <geodns@example.org>
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: init-system-helpers (>= 1.54~)
Suggests: dnsutils
Section: net
Priority: optional
Homepage: https://github.com/geodns/geodns
Description: authoritative DNS server answering with the nearest healthy site
 geodns answers service names with the addresses of the nearest site that
 passes its health checks (GeoIP and EDNS Client Subnet, rules, capacity
 spillover, drains and dials through an admin API), and every other name
 as a standard authoritative server. Zones are YAML files, reloaded when
 they change; Prometheus metrics; a systemd unit with a dynamic user.
CONTROL
	deb="$out/geodns_${debver}_${arch}.deb"
	dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
	echo "$deb"
	;;
dist)
	name="geodns-$(echo "$version" | sed 's/^v//')-linux-$arch"
	install -d -m 0755 "$stage/$name"
	install_tree "$stage/$name" usr/local/bin
	sed -i 's|/usr/bin/geodns|/usr/local/bin/geodns|' "$stage/$name/lib/systemd/system/geodns.service"
	# The archive unpacks onto /: the licence goes with the other documents,
	# not to /LICENSE.
	install -m 0644 "$top/LICENSE" "$stage/$name/usr/share/doc/geodns/LICENSE"
	tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name -czf "$out/$name.tar.gz" "$name"
	echo "$out/$name.tar.gz"
	;;
*)
	echo "usage: $0 deb|dist VERSION BIN OUTDIR" >&2
	exit 2
	;;
esac
