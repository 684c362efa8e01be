#!/usr/bin/env bash
# Backs up contactrelay's JetStream data with the nats CLI, one directory
# per stream: the commands (CONTACT_COMMANDS, with the durable consumer
# contact-consumer), the events (CONTACT_EVENTS), the open failures
# (CONTACT_FAILURES), the idempotency records (KV_CONTACT_RECORDS, the
# stream of the bucket CONTACT_RECORDS), the audit (CONTACT_AUDIT), the
# pauses (KV_CONTACT_PAUSES), the console's sign-outs
# (KV_CONTACT_CONSOLE_SESSIONS) and the bulk replay and discard jobs
# (KV_CONTACT_JOBS). A stream that does not exist is skipped,
# and said so. The exact-value index of the open failures
# (CONTACT_FAILURE_INDEX) is not backed up: it is derived from
# CONTACT_FAILURES, and 'consumer setup' after a restore builds it again.
#
#   deploy/backup/backup.sh [DIR]
#
# DIR must not exist yet, or be empty; default ./contactrelay-backup-<UTC
# time>. The connection is the service's: NATS_URL, NATS_CREDS, NATS_NKEY,
# NATS_TLS_CA, NATS_TLS_CERT, NATS_TLS_KEY, NATS_JS_DOMAIN, NATS_INBOX_PREFIX (docs/CLI.md).
# NATS_CLI names the nats binary (default: nats on PATH; the pinned
# version is in docs/BACKUP.md). Each stream's backup is checked with
# `nats backup validate` once written (which reads only backups of NATS
# Server 2.15 or newer: BACKUP_VALIDATE=false skips it for older servers).
# Exit status 0 when every existing
# stream was backed up, 1 otherwise. The runbook is docs/BACKUP.md.
set -euo pipefail

streams=(CONTACT_COMMANDS CONTACT_EVENTS CONTACT_FAILURES KV_CONTACT_RECORDS CONTACT_AUDIT KV_CONTACT_PAUSES KV_CONTACT_CONSOLE_SESSIONS KV_CONTACT_JOBS)

nats_cli=${NATS_CLI:-nats}
dir=${1:-contactrelay-backup-$(date -u +%Y%m%dT%H%M%SZ)}

# The service's connection variables, as the nats CLI's flags. The CLI
# reads NATS_URL, NATS_CREDS and NATS_NKEY itself, under the same names.
conn=(--no-context)
[[ -n ${NATS_URL:-} ]] && conn+=(--server "$NATS_URL")
[[ -n ${NATS_CREDS:-} ]] && conn+=(--creds "$NATS_CREDS")
[[ -n ${NATS_NKEY:-} ]] && conn+=(--nkey "$NATS_NKEY")
[[ -n ${NATS_TLS_CA:-} ]] && conn+=(--tlsca "$NATS_TLS_CA")
[[ -n ${NATS_TLS_CERT:-} ]] && conn+=(--tlscert "$NATS_TLS_CERT")
[[ -n ${NATS_TLS_KEY:-} ]] && conn+=(--tlskey "$NATS_TLS_KEY")
[[ -n ${NATS_JS_DOMAIN:-} ]] && conn+=(--js-domain "$NATS_JS_DOMAIN")
[[ -n ${NATS_INBOX_PREFIX:-} ]] && conn+=(--inbox-prefix "$NATS_INBOX_PREFIX")

if [[ -e $dir && -n $(ls -A "$dir") ]]; then
	echo "backup: $dir is not empty: give a new directory" >&2
	exit 2
fi
mkdir -p "$dir"

# Fails (and stops the script) when NATS cannot be reached.
existing=$("$nats_cli" "${conn[@]}" stream ls --names)

failed=0
{
	echo "contactrelay backup"
	echo "taken: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "nats CLI: $("$nats_cli" --version 2>&1)"
} >"$dir/MANIFEST"
for s in "${streams[@]}"; do
	if ! grep -qxF "$s" <<<"$existing"; then
		echo "backup: skipped $s: the stream does not exist"
		echo "skipped: $s (does not exist)" >>"$dir/MANIFEST"
		continue
	fi
	echo "backup: $s"
	if "$nats_cli" "${conn[@]}" backup stream "$s" "$dir/$s" --consumers --no-progress &&
		{ [[ ${BACKUP_VALIDATE:-true} == false ]] || "$nats_cli" backup validate "$dir/$s"; }; then
		echo "stream: $s" >>"$dir/MANIFEST"
	else
		echo "backup: FAILED: $s" >&2
		echo "failed: $s" >>"$dir/MANIFEST"
		failed=1
	fi
done

if ((failed)); then
	echo "backup: incomplete, see $dir/MANIFEST" >&2
	exit 1
fi
echo "backup: done in $dir"
