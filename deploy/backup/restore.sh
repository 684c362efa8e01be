#!/usr/bin/env bash
# Restores a backup made by backup.sh into a NATS whose JetStream has none
# of its streams yet: every stream directory of the backup, the records
# first and the commands last. Stop every contactrelay instance (the
# service, the console, the setup Job) first, or they create empty streams
# of their own; start them once this has finished.
#
#   deploy/backup/restore.sh DIR [--replicas N]
#
# --replicas sets the restored streams' replicas (default: as backed up;
# a backup of an R3 cluster restored into one server needs --replicas 1).
# The connection is the service's: NATS_URL, NATS_CREDS, NATS_NKEY,
# NATS_TLS_CA, NATS_TLS_CERT, NATS_TLS_KEY, NATS_JS_DOMAIN, NATS_INBOX_PREFIX; NATS_CLI names
# the nats binary (default: nats on PATH). A stream that exists already is
# not touched, and makes the script fail (exit 1) after restoring the
# others. The runbook is docs/BACKUP.md.
set -euo pipefail

# The records before what refers to them, the commands last.
order=(KV_CONTACT_RECORDS KV_CONTACT_PAUSES KV_CONTACT_CONSOLE_SESSIONS KV_CONTACT_JOBS CONTACT_FAILURES CONTACT_EVENTS CONTACT_AUDIT CONTACT_COMMANDS)

usage() {
	echo "usage: $0 DIR [--replicas N]" >&2
	exit 2
}
[[ $# -ge 1 ]] || usage
dir=$1
shift
restore_args=(--no-progress)
while [[ $# -gt 0 ]]; do
	case $1 in
	--replicas)
		[[ $# -ge 2 ]] || usage
		restore_args+=(--replicas "$2")
		shift 2
		;;
	*) usage ;;
	esac
done
[[ -d $dir ]] || {
	echo "restore: $dir is not a directory" >&2
	exit 2
}

nats_cli=${NATS_CLI:-nats}
conn=(--no-context)
[[ -n ${NATS_URL:-} ]] && conn+=(--server "$NATS_URL")
[[ -n ${NATS_CREDS:-} ]] && conn+=(--creds "$NATS_CREDS")
[[ -n ${NATS_NKEY:-} ]] && conn+=(--nkey "$NATS_NKEY")
[[ -n ${NATS_TLS_CA:-} ]] && conn+=(--tlsca "$NATS_TLS_CA")
[[ -n ${NATS_TLS_CERT:-} ]] && conn+=(--tlscert "$NATS_TLS_CERT")
[[ -n ${NATS_TLS_KEY:-} ]] && conn+=(--tlskey "$NATS_TLS_KEY")
[[ -n ${NATS_JS_DOMAIN:-} ]] && conn+=(--js-domain "$NATS_JS_DOMAIN")
[[ -n ${NATS_INBOX_PREFIX:-} ]] && conn+=(--inbox-prefix "$NATS_INBOX_PREFIX")

existing=$("$nats_cli" "${conn[@]}" stream ls --names)

failed=0
restored=0
for s in "${order[@]}"; do
	if [[ ! -f $dir/$s/backup.json ]]; then
		echo "restore: skipped $s: not in $dir"
		continue
	fi
	if grep -qxF "$s" <<<"$existing"; then
		echo "restore: FAILED: $s exists already; left as it is (delete it first to restore it)" >&2
		failed=1
		continue
	fi
	echo "restore: $s"
	if "$nats_cli" "${conn[@]}" backup restore stream "$dir/$s" "${restore_args[@]}" >/dev/null; then
		restored=$((restored + 1))
	else
		echo "restore: FAILED: $s" >&2
		failed=1
	fi
done

if ((restored == 0 && failed == 0)); then
	echo "restore: $dir holds no stream backup" >&2
	exit 1
fi
if ((failed)); then
	exit 1
fi
echo "restore: done, $restored streams; now start contactrelay"
