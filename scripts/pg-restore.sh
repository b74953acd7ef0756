#!/bin/sh
# pg-restore.sh — restore a Veil PostgreSQL backup into an empty database.
#
# Usage:
#   PGPASSWORD=… scripts/pg-restore.sh FILE.pgdump 'postgres://veil@db:5432/veil_restored'
#
# FILE is a dump from `veil admin backup --db postgres://…` (its manifest,
# FILE.manifest.json, lies beside it) or from scripts/pg-backup.sh (FILE.sha256).
#
# Procedure:
#   1. Prove the backup first: `veil admin restore-drill FILE --scratch
#      postgres://…` restores it into a throw-away database and checks
#      schema version, row counts and checksum.
#   2. Create the target database (createdb -O veil veil_restored); it must
#      not already hold the dumped schema's tables.
#   3. Run this script: it checks the SHA-256 against the manifest (or the
#      .sha256 file), then runs pg_restore in one transaction
#      (--single-transaction --exit-on-error: all or nothing), without
#      restoring ownership or grants (--no-owner --no-acl), so the connecting
#      role owns everything.
#   4. Put the server secret back (it is not in the database) and start the
#      nodes with --db pointing at the restored database (add
#      ?search_path=SCHEMA if the schema is not public). They find the schema
#      up to date, or migrate it if the binary is newer.
#   5. Clients resend what they sent after the backup was taken only if they
#      never got an answer; messages accepted after the backup are lost with
#      the rest of the newer state. Say so to users.
set -eu

if [ $# -ne 2 ]; then
	echo "usage: $0 FILE.pgdump POSTGRES_URL" >&2
	exit 2
fi
file=$1
url=$2

command -v pg_restore >/dev/null || { echo "$0: pg_restore not found" >&2; exit 1; }
[ -f "$file" ] || { echo "$0: $file: no such file" >&2; exit 1; }

actual=$(sha256sum "$file" | cut -d' ' -f1)
if [ -f "$file.manifest.json" ]; then
	expected=$(sed -n 's/.*"sha256": *"\([0-9a-f]\{64\}\)".*/\1/p' "$file.manifest.json" | head -n 1)
	schema=$(sed -n 's/.*"pg_schema": *"\([^"]*\)".*/\1/p' "$file.manifest.json" | head -n 1)
elif [ -f "$file.sha256" ]; then
	expected=$(cut -d' ' -f1 "$file.sha256")
	schema=
else
	echo "$0: neither $file.manifest.json nor $file.sha256: cannot check the file" >&2
	exit 1
fi
if [ "$actual" != "$expected" ]; then
	echo "$0: $file hashes to $actual, expected $expected: altered or corrupted; not restoring" >&2
	exit 1
fi
echo "sha256 ok: $actual"

# A fresh database has an empty public schema, which the dump creates
# again: drop it when it holds nothing.
if [ "${schema:-public}" = public ] && command -v psql >/dev/null; then
	n=$(psql -Atq --dbname="$url" -c "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'")
	if [ "$n" != 0 ]; then
		echo "$0: the target's public schema is not empty ($n objects); restore into an empty database" >&2
		exit 1
	fi
	psql -q --dbname="$url" -c 'DROP SCHEMA IF EXISTS public'
fi

pg_restore --no-owner --no-acl --single-transaction --exit-on-error --dbname="$url" "$file"
echo "restored $file into the target database${schema:+ (schema $schema)}"
