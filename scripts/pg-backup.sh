#!/bin/sh
# pg-backup.sh — the manual PostgreSQL backup of a Veil server database.
#
# Usage:
#   PGPASSWORD=… scripts/pg-backup.sh 'postgres://veil@db:5432/veil' /backups [SCHEMA]
#
# Prefer `veil admin backup --db postgres://… --out /backups`: it takes the
# same pg_dump, plus a manifest with per-table row counts read in the very
# snapshot pg_dump uses, which `veil admin restore-drill` checks. This script
# is the fallback where the veil binary is not at hand, and documents the
# procedure:
#
#   1. pg_dump -Fc (custom format, compressed, restorable table by table)
#      of the schema that holds Veil's tables (SCHEMA, default public; the
#      one named by search_path in the server's --db URL). pg_dump reads
#      everything in one REPEATABLE READ snapshot, so the dump is
#      consistent while servers keep writing; it takes no lock that blocks
#      them (only ACCESS SHARE: DDL waits, sends do not).
#   2. A SHA-256 beside the dump (FILE.sha256, sha256sum format).
#   3. The file appears under its final name only when complete.
#
# Keep the password out of the URL (it would show in the process list):
# use PGPASSWORD or ~/.pgpass. The server secret (server.secret, or the
# --secret-file of the nodes) is NOT in the database: back it up
# separately, and keep it secret.
#
# Point-in-time recovery. A dump restores the database as it was when the
# dump started. To lose at most the last few seconds instead, run
# PostgreSQL with continuous WAL archiving and take base backups:
#   - postgresql.conf: wal_level = replica, archive_mode = on,
#     archive_command = 'test ! -f /archive/%f && cp %p /archive/%f'
#     (or a tool: pgBackRest, WAL-G, Barman);
#   - a base backup now and then: pg_basebackup -D /base/$(date +%F) -Ft -z -Xs -P;
#   - to recover: restore a base backup, set restore_command (and
#     recovery_target_time if needed), touch recovery.signal, start.
# See "Continuous Archiving and Point-in-Time Recovery (PITR)" in the
# PostgreSQL manual (https://www.postgresql.org/docs/15/continuous-archiving.html).
# Keep dumps as well: they are what a restore drill checks, and they
# restore into any newer PostgreSQL major version.
set -eu

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
	echo "usage: $0 POSTGRES_URL OUTDIR [SCHEMA]" >&2
	exit 2
fi
url=$1
outdir=$2
schema=${3:-public}

command -v pg_dump >/dev/null || { echo "$0: pg_dump not found (install the PostgreSQL client tools, same major version as the server or newer)" >&2; exit 1; }
[ -d "$outdir" ] || { echo "$0: $outdir is not a directory" >&2; exit 1; }

out="$outdir/veil-backup-$(date -u +%Y%m%dT%H%M%SZ).pgdump"
[ ! -e "$out" ] || { echo "$0: $out exists" >&2; exit 1; }
tmp="$out.partial"
trap 'rm -f "$tmp"' EXIT

# The schema name is quoted so pg_dump takes it literally, not as a pattern.
pg_dump --format=custom --schema="\"$schema\"" --file="$tmp" --dbname="$url"
sync "$tmp" 2>/dev/null || sync
mv "$tmp" "$out"
trap - EXIT
(cd "$outdir" && sha256sum "$(basename "$out")" >"$(basename "$out").sha256")
echo "backup written: $out"
echo "sha256: $(cut -d' ' -f1 "$out.sha256")"
echo "note: the server secret is not in the backup; back it up separately and keep it secret"
