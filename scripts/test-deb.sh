#!/bin/bash
# scripts/test-deb.sh bin/geodns_*.deb: the Debian package on this machine,
# as an operator would use it, as far as a machine without systemd as PID 1
# allows. As root:
#   1. purge any installed geodns, then `apt-get install ./geodns_*.deb`;
#   2. `systemd-analyze verify` the installed unit;
#   3. run the unit's ExecStart with the packaged config as the unit would:
#      an unprivileged uid of the DynamicUser range, only CAP_NET_BIND_SERVICE
#      (ambient), the state directory /var/lib/geodns -> private/geodns, the
#      API token as a credential; dig it, drain a site through the API (a
#      state file write), edit a zone and `kill -HUP` it (the unit's
#      ExecReload), stop it;
#   4. `apt-get purge geodns`: every file it listed is gone, and no user.
# The systemd sandbox options (ProtectSystem=, SystemCallFilter=, ...) are
# checked by systemd-analyze only, not applied here.
set -euo pipefail
deb=$(realpath "${1:?usage: $0 geodns_VERSION_ARCH.deb}")
[ "$(id -u)" = 0 ] || { echo "test-deb: needs root (apt-get install)" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
step() { printf '\n== %s\n' "$*"; }

# The test's own zone and test state; the package's files are left to purge.
zone=/etc/geodns/zones/deb-test.example.yaml
pid= creds= made_private=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	[ -n "$creds" ] && rm -rf "$creds"
	rm -f "$zone"
}
trap cleanup EXIT

step "purge any installed geodns"
if dpkg-query -W -f='${Status}\n' geodns 2>/dev/null | grep -q installed; then
	apt-get purge -y geodns
fi

step "apt-get install $deb"
apt-get install -y "$deb"
dpkg-query -W -f='${Package} ${Version} ${Status}\n' geodns
geodns version

step "systemd-analyze verify /lib/systemd/system/geodns.service"
if command -v systemd-analyze >/dev/null; then
	systemd-analyze verify /lib/systemd/system/geodns.service
	echo "verify: ok (exit 0)"
	systemd-analyze security --offline=yes /lib/systemd/system/geodns.service 2>/dev/null | tail -1 || true
else
	echo "systemd-analyze is not installed: unit not verified" >&2
	exit 1
fi

step "geodns check --config /etc/geodns/geodns.yaml (the packaged config)"
cat >"$zone" <<'ZONE'
origin: deb-test.example.
ttl: 300
soa: {ns: ns1.deb-test.example., mbox: hostmaster.deb-test.example., refresh: 3600, retry: 600, expire: 1209600, minttl: 60}
records:
  "@": {NS: [ns1.deb-test.example.]}
  ns1: {A: [192.0.2.53]}
  www: {service: web}
sites:
  east: {lat: 39.04, lon: -77.49}
  west: {lat: 37.34, lon: -121.89}
services:
  web:
    ttl: 30
    endpoints:   # no check: never probed
      - {site: east, address: 192.0.2.10}
      - {site: west, address: 198.51.100.10}
ZONE
geodns check --config /etc/geodns/geodns.yaml

step "run the unit's ExecStart as the unit would"
# A uid of systemd's DynamicUser range (61184-65519) that no one has.
uid=61184
while getent passwd $uid >/dev/null || getent group $uid >/dev/null; do uid=$((uid + 1)); done
# StateDirectory=geodns with DynamicUser=yes: /var/lib/private/geodns owned
# by the user, /var/lib/geodns a link to it.
[ -d /var/lib/private ] || made_private=1
install -d -m 0700 /var/lib/private
install -d -m 0700 -o $uid -g $uid /var/lib/private/geodns
ln -sfn private/geodns /var/lib/geodns
# LoadCredential=api-token:/etc/geodns/api-token
creds=$(mktemp -d)
install -m 0400 -o $uid -g $uid /etc/geodns/api-token "$creds/api-token"
chmod 0711 "$creds"
export CREDENTIALS_DIRECTORY=$creds
execstart=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/geodns.service)
eval "set -- $execstart"
echo "as uid $uid with CAP_NET_BIND_SERVICE only: $*"
log=$(mktemp)
# In a mount namespace of its own, as systemd runs it: /var/lib/private
# (0700 root) is replaced by a tmpfs the user can pass, holding the state
# directory, so the user reaches only its own state.
unshare --mount --propagation private -- sh -c '
	real=$(mktemp -d) && mount --bind /var/lib/private/geodns "$real" &&
	mount -t tmpfs -o mode=0755 tmpfs /var/lib/private && mkdir /var/lib/private/geodns &&
	mount --bind "$real" /var/lib/private/geodns && exec "$@"' sh \
	setpriv --reuid=$uid --regid=$uid --clear-groups \
	--inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service \
	--bounding-set=-all,+net_bind_service --no-new-privs -- "$@" >"$log" 2>&1 &
pid=$!

answer() { dig @127.0.0.1 -p 53 +short +time=1 +tries=1 "$@" 2>/dev/null || true; }
wait_for() { # wait_for WANT dig-args...: up to 10 s for dig to answer WANT
	local want=$1; shift
	for _ in $(seq 100); do
		[ "$(answer "$@")" = "$want" ] && return 0
		kill -0 "$pid" 2>/dev/null || { echo "geodns exited:"; cat "$log"; return 1; }
		sleep 0.1
	done
	echo "no answer $want from dig $*; log:"; cat "$log"; return 1
}
wait_for 192.0.2.10 www.deb-test.example A +subnet=128.112.0.0/24
echo "process: $(ps -o user=,uid=,comm= -p $pid)   caps: $(grep CapEff /proc/$pid/status)"
dig @127.0.0.1 -p 53 www.deb-test.example A +norec | sed -n '/HEADER/p;/ANSWER SECTION/,/^$/p'
dig @::1 -p 53 ns1.deb-test.example A +short

step "drain a site with geodns ctl (a write to the state directory)"
GEODNS_API_TOKEN=$(cat /etc/geodns/api-token) geodns ctl drain west --reason "deb test"
geodns ctl status | sed -n '/^SITES/,/^$/p;/^OVERRIDES/,/^$/p'
ls -ln /var/lib/private/geodns/
GEODNS_API_TOKEN=$(cat /etc/geodns/api-token) geodns ctl undrain west
curl -sS -w ' (readyz)\n' http://127.0.0.1:8053/readyz

step "reload: edit the zone, kill -HUP \$MAINPID (the unit's ExecReload)"
sed -i 's/ns1: {A: \[192.0.2.53\]}/ns1: {A: [192.0.2.54]}/' "$zone"
kill -HUP "$pid"
wait_for 192.0.2.54 ns1.deb-test.example A
grep -m1 'SIGHUP' "$log"
kill -0 "$pid" && echo "still running after SIGHUP: pid $pid"

step "stop (SIGTERM, as systemctl stop)"
kill -TERM "$pid"
wait "$pid" && echo "exit status 0"
pid=
tail -1 "$log"
rm -f "$log" "$zone"

step "dpkg -L geodns (before purge)"
files=$(dpkg -L geodns)
echo "$files"

step "apt-get purge geodns"
apt-get purge -y geodns

step "after purge: what is left"
left=0
for f in $files; do
	# Directories such as /usr/share/man/man1 are other packages' too.
	if [ -d "$f" ] && [ "${f#*geodns}" = "$f" ]; then continue; fi
	if [ -e "$f" ] || [ -L "$f" ]; then echo "left: $f"; left=1; fi
done
found=$(find /etc /lib /usr /var /run -xdev -name '*geodns*' 2>/dev/null | grep -v '^/usr/share/[^/]*/$' || true)
echo "find /etc /lib /usr /var /run -name '*geodns*': ${found:-nothing}"
[ -z "$found" ] || left=1
# systemd makes /var/lib/private for every DynamicUser unit; made here, it goes.
[ -n "$made_private" ] && rmdir /var/lib/private
echo "getent passwd geodns: $(getent passwd geodns || echo none); getent group geodns: $(getent group geodns || echo none)"
getent passwd geodns >/dev/null && left=1
dpkg-query -W geodns 2>/dev/null && { echo "dpkg still knows geodns"; left=1; }
[ $left = 0 ] && echo "test-deb: ok, nothing left" || { echo "test-deb: FAILED, files left"; exit 1; }
