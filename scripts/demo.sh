#!/usr/bin/env bash
# walvault's main job on a fresh machine, no cloud account: a throw-away
# PostgreSQL 15 archives its WAL with `walvault wal-push %p` into a
# file:// repository, a segment comes back byte-identical with
# `walvault wal-fetch`, a base backup is taken, a table is dropped by
# mistake, and `walvault restore` brings the cluster back to just before
# the drop. Everything lives in one temp dir, removed at the end.
# Run as root (PostgreSQL itself runs as the postgres user).
#
# WALVAULT_DEMO_CONFIG=FILE runs the same steps against another repository:
# a walvault YAML file (see the README's configuration reference) naming,
# say, an s3:// prefix that no cluster uses yet on the S3 server you want
# to try, with its credentials in the usual AWS variables. Its objects stay
# there afterwards (Object Lock may keep them anyway).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh --no-s3 >/dev/null
PG_BIN=/usr/lib/postgresql/15/bin
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

work="$(mktemp -d /tmp/walvault-demo.XXXXXX)"
chmod 755 "$work"
data="$work/data" repo="$work/repo" sock="$work/sock" restored="$work/restored"
port=$(( 20000 + RANDOM % 20000 ))
port2=$(( port + 1 ))
cleanup() {
	as_pg "$PG_BIN/pg_ctl" -D "$restored" -m immediate stop >/dev/null 2>&1 || true
	as_pg "$PG_BIN/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
config="$work/walvault.yml"
if [ -n "${WALVAULT_DEMO_CONFIG:-}" ]; then
	cp "$WALVAULT_DEMO_CONFIG" "$config"
else
	printf 'repo: file://%s\n' "$repo" >"$config"
fi
chmod 644 "$config"

step() { printf '\n==> %s\n' "$*"; }

step "build walvault (as README's Install does)"
go build -tags urfave_cli_no_docs -o "$work/walvault" ./cmd/walvault
"$work/walvault" --version

step "start PostgreSQL 15 (port $port) with archive_command = walvault wal-push"
mkdir -p "$repo" "$sock"
[ "$(id -u)" = 0 ] && chown postgres: "$work" "$repo" "$sock"
as_pg "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust --data-checksums >/dev/null
cat >>"$data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$sock'
wal_level = replica
archive_mode = on
archive_command = '$work/walvault wal-push --config $config %p'
CONF
grep '^archive_command' "$data/postgresql.conf"
as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$work/postgres.log" -w start >/dev/null
psql() { as_pg "$PG_BIN/psql" -h "$sock" -p "$port" -U postgres -XAtq -v ON_ERROR_STOP=1 "$@"; }

step "write some data and switch WAL segments"
psql -c "CREATE TABLE demo AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g"
for _ in 1 2 3; do
	psql -c "INSERT INTO demo SELECT g, 'more' FROM generate_series(1, 1000) g"
	last=$(psql -c "SELECT pg_walfile_name(pg_switch_wal())")
done
echo "last completed segment: $last"
for _ in $(seq 1 100); do
	archived=$(psql -c "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
	[[ "$archived" > "$last" || "$archived" == "$last" ]] && break
	sleep 0.1
done
psql -c "SELECT 'archived: ' || archived_count || ', failed: ' || failed_count FROM pg_stat_archiver"

step "what the repository holds"
if [ -z "${WALVAULT_DEMO_CONFIG:-}" ]; then
	(cd "$repo" && find . -type f ! -name '.*' | sort | while read -r f; do printf '%10d  %s\n' "$(stat -c %s "$f")" "${f#./}"; done)
	echo "walvault.json, written once by the first push, ties the repository to this cluster:"
	grep -a -o '"system_identifier": "[0-9]*"' "$repo/walvault.json" | sed 's/^/    /'
fi
"$work/walvault" info --config "$config"

step "fetch $last back with walvault wal-fetch and compare"
"$work/walvault" wal-fetch --config "$config" "$last" "$work/fetched"
cmp "$work/fetched" "$data/pg_wal/$last" && echo "byte-identical: $last ($(stat -c %s "$work/fetched") bytes)"

step "a segment that was never archived: exit 1, as restore_command expects"
set +e
"$work/walvault" wal-fetch --config "$config" 0000000100000000000000FF "$work/missing" 2>&1
echo "exit status: $?"
set -e
step "take a base backup with walvault backup-push"
"$work/walvault" backup-push --config "$config" --pg-conn "host=$sock port=$port user=postgres"

step "more writes, a marker, then a mistake: DROP TABLE demo"
psql -c "INSERT INTO demo SELECT g, 'after the backup' FROM generate_series(300001, 301000) g"
psql -c "CREATE TABLE audit_log (note text, at timestamptz DEFAULT clock_timestamp()); INSERT INTO audit_log (note) VALUES ('marker: all is well')"
target=$(psql -c "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
psql -c "SELECT pg_switch_wal()" >/dev/null
sleep 0.2
psql -c "DROP TABLE demo; INSERT INTO audit_log (note) VALUES ('oops: demo dropped')"
last=$(psql -c "SELECT pg_walfile_name(pg_switch_wal())")
for _ in $(seq 1 100); do
	archived=$(psql -c "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
	[[ "$archived" > "$last" || "$archived" == "$last" ]] && break
	sleep 0.1
done
echo "recovery target (just before the DROP): $target"
"$work/walvault" backup-list --config "$config"

step "restore to $target into a new directory"
t0=$(date +%s.%N)
"$work/walvault" restore --config "$config" --pgdata "$restored" --target-time "$target" --target-action promote
t1=$(date +%s.%N)

step "start the restored cluster (port $port2, archiving off) and let it replay"
as_pg "$PG_BIN/pg_ctl" -D "$restored" -l "$work/restored.log" -w \
	-o "-c port=$port2 -c unix_socket_directories='$sock' -c archive_mode=off" start >/dev/null
psql2() { as_pg "$PG_BIN/psql" -h "$sock" -p "$port2" -U postgres -XAtq -v ON_ERROR_STOP=1 "$@"; }
until [ "$(psql2 -c 'SELECT pg_is_in_recovery()')" = f ]; do sleep 0.1; done
t2=$(date +%s.%N)
echo "demo rows back:    $(psql2 -c 'SELECT count(*) FROM demo')"
echo "audit_log:         $(psql2 -c "SELECT string_agg(note, ' | ') FROM audit_log")"
awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "restore %.1f s + replay to the target %.1f s = %.1f s\n", b - a, c - b, c - a }'

step "prove it again, unattended: walvault drill (restore, recover, check, report RTO)"
# A scratch copy on 127.0.0.1 with archiving off: it never writes into the
# repository, and is stopped and removed whatever happens.
if ! "$work/walvault" drill --config "$config" --scratch-dir "$work" \
	--check-sql "SELECT 1 FROM audit_log WHERE note LIKE 'marker%'" >"$work/drill.out" 2>"$work/drill.log"; then
	cat "$work/drill.out" "$work/drill.log"
	exit 1
fi
cat "$work/drill.out"
echo "the drill's RTO:   $(grep '^RTO' "$work/drill.out")"

step "done; cleaning up $work"
