#!/usr/bin/env bash
# Tests contrib/ (scripts/test.sh runs it):
#  - the Prometheus alert rules: promtool check rules, and promtool test rules,
#    with a test for every alert; every metric the rules and the Grafana
#    dashboard name exists;
#  - the systemd units, where systemd-analyze exists: systemd-analyze verify
#    must print nothing; systemd-analyze security must rate each service at
#    most 2.0 ("OK"; contrib/README.md records each score); and walvault must
#    accept each ExecStart's command line; walvault-failure@ logs the failed
#    unit and runs the hook.
# promtool comes from ./scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$PATH:$(go env GOPATH)/bin"
fail() {
	echo "test-contrib: $*" >&2
	exit 1
}

if ! command -v promtool >/dev/null; then
	fail "promtool is not installed: run ./scripts/install-deps.sh (it takes promtool out of Debian's prometheus package)"
fi
promtool check rules contrib/prometheus/walvault-alerts.yml
(cd contrib/prometheus && promtool test rules walvault-alerts_test.yml)
untested=()
for alert in $(sed -n 's/^ *- alert: *//p' contrib/prometheus/walvault-alerts.yml); do
	grep -q "alertname: $alert\$" contrib/prometheus/walvault-alerts_test.yml || untested+=("$alert")
done
[ ${#untested[@]} -eq 0 ] || fail "no promtool test in walvault-alerts_test.yml for: ${untested[*]}"
# Every metric the rules and the dashboard use is one the exporter or the
# receiver serves (a renamed metric leaves no rule silently dead).
defined="$(grep -rhoE --include='*.go' --exclude='*_test.go' '"walvault_[a-z_]+"' exporter receive | tr -d '"' | sort -u)"
unknown="$(grep -ohE 'walvault_[a-z_]+' contrib/prometheus/walvault-alerts.yml contrib/grafana/walvault-dashboard.json | sort -u | comm -13 <(echo "$defined") -)"
[ -z "$unknown" ] || fail "contrib uses metrics that neither exporter/ nor receive/ defines:"$'\n'"$unknown"

if ! command -v systemd-analyze >/dev/null; then
	echo "test-contrib: systemd-analyze is not installed here: the systemd units are not checked"
	exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# verify wants ExecStart's program to exist: the units are checked as
# installed, with the walvault they would run built into the work directory.
go build -o "$work/walvault" ./cmd/walvault
mkdir "$work/units"
for f in contrib/systemd/*@.service contrib/systemd/*@.timer; do
	sed "s|/usr/local/bin/walvault|$work/walvault|g" "$f" >"$work/units/$(basename "$f")"
done
for f in "$work"/units/*; do
	out="$(systemd-analyze verify --man=no "$f" 2>&1)" || fail "systemd-analyze verify $(basename "$f"):"$'\n'"$out"
	[ -z "$out" ] || fail "systemd-analyze verify $(basename "$f") warns:"$'\n'"$out"
done
for f in "$work"/units/*.service; do
	unit="$(basename "$f")"
	if ! out="$(systemd-analyze security --offline=yes --threshold=20 "$f" 2>&1)"; then
		fail "$unit is exposed more than 2.0 (OK) in systemd-analyze security:"$'\n'"$out"
	fi
	echo "test-contrib: $unit: $(echo "$out" | sed -n 's/.*Overall exposure level for [^:]*: //p')"
	# The command line as the instance db1 would run it.
	cmd="$(sed -n 's/^ExecStart=//p' "$f" | sed -e 's/%S/\/var\/lib/g' -e 's/%i/db1/g')"
	case "$cmd" in
	"$work/walvault "*) $cmd --help >/dev/null || fail "$unit: walvault refuses its ExecStart: ${cmd#"$work/"}" ;;
	esac
done
# walvault-failure@: its line for the journal, and the hook with the failed
# unit in its environment, run as systemd would run them.
cmd="$(sed -n 's/^ExecStart=//p' contrib/systemd/walvault-failure@.service | sed -e 's/%i/db1/g' -e 's/\$\$/$/g')"
eval "set -- $cmd"
out="$(env -i PATH=/usr/bin:/bin WALVAULT_CLUSTER=db1 MONITOR_UNIT=walvault-backup@db1.service MONITOR_SERVICE_RESULT=exit-code \
	MONITOR_EXIT_CODE=exited MONITOR_EXIT_STATUS=1 WALVAULT_ON_FAILURE='echo "hook: $WALVAULT_CLUSTER $MONITOR_UNIT"' "$@")"
want="<3>walvault: walvault-backup@db1.service failed (result exit-code, exited 1); journalctl -u walvault-backup@db1.service says why
hook: db1 walvault-backup@db1.service"
[ "$out" = "$want" ] || fail "walvault-failure@.service printed"$'\n'"$out"$'\n'"want"$'\n'"$want"
echo "test-contrib: contrib/prometheus and contrib/systemd pass"
