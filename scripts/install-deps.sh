#!/usr/bin/env bash
# Installs what walvault's tests and demo need on a fresh Debian machine:
# PostgreSQL 15 server programs, lz4 (benchmark baseline) and the Versity S3
# Gateway. Safe to run again: it installs only what is missing. Run as root.
# With "--no-s3" it skips the S3 gateway (the demo needs only PostgreSQL).
set -euo pipefail
with_s3=yes
[ "${1:-}" = "--no-s3" ] && with_s3=no

PG_BIN=/usr/lib/postgresql/15/bin
VERSITYGW_VERSION=v1.8.0

need_apt=()
[ -x "$PG_BIN/initdb" ] || need_apt+=(postgresql-15)
command -v lz4 >/dev/null || need_apt+=(lz4)
if [ ${#need_apt[@]} -gt 0 ]; then
	echo "install-deps: apt-get install ${need_apt[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# No default cluster on port 5432: the tests start their own servers.
	apt-get install -y -qq postgresql-common >/dev/null
	mkdir -p /etc/postgresql-common
	if [ -f /etc/postgresql-common/createcluster.conf ]; then
		sed -i 's/^#*\s*create_main_cluster.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf
	fi
	apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres

gobin="$(go env GOPATH)/bin"
if [ "$with_s3" = yes ] && ! command -v versitygw >/dev/null && [ ! -x "$gobin/versitygw" ]; then
	echo "install-deps: go install github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
	(cd / && GOFLAGS=-mod=mod go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION")
fi
# promtool checks the alert rules in contrib/prometheus and the exporter's
# metric names. Debian's prometheus package has it, but installing that
# package starts a Prometheus server: take only promtool out of it. Only the
# tests need it, so --no-s3 (the demo) skips it as it skips the gateway.
if [ "$with_s3" = yes ] && ! command -v promtool >/dev/null && [ ! -x "$gobin/promtool" ]; then
	echo "install-deps: promtool, from Debian's prometheus package, into $gobin"
	deb_dir="$(mktemp -d)"
	if ! (cd "$deb_dir" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" prometheus 2>/dev/null); then
		apt-get update -qq
		(cd "$deb_dir" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" prometheus)
	fi
	dpkg -x "$deb_dir"/prometheus_*.deb "$deb_dir/root"
	install -D -m 0755 "$deb_dir/root/usr/bin/promtool" "$gobin/promtool"
	rm -rf "$deb_dir"
fi
# age: the README's emergency decryption (age -d | lz4 -d) is tested with
# the real command-line tool.
if ! command -v age >/dev/null; then
	echo "install-deps: apt-get install age"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq age >/dev/null
fi
echo "install-deps: what walvault needs is present"

