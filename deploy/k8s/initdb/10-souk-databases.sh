#!/bin/sh
# One PostgreSQL database and one role per souk service (DESIGN §2: no service reads
# another's data). Run by the postgres image's entrypoint on a fresh data directory
# (mounted at /docker-entrypoint-initdb.d by compose and by the StatefulSet), and safe
# to run again by hand after adding a service or changing a password:
#   kubectl -n souk exec postgres-0 -- /docker-entrypoint-initdb.d/10-souk-databases.sh
# SOUK_DATABASES: the services ("users catalog …"). Each one's password:
# $SOUK_DB_PASSWORD_<SERVICE>, else the file $SOUK_DB_PASSWORD_DIR/SOUK_DB_PASSWORD_<SERVICE>.
# Connects as $POSTGRES_USER (postgres) over the server's Unix socket.
# What a role gets: LOGIN, its own database (owner, C collation as scripts/pg makes
# them), CONNECT on no other (PUBLIC's CONNECT revoked); pg_hba.conf then lets a role
# in over TCP only to the database of its own name, and the superuser only locally.
set -eu

: "${SOUK_DATABASES:?SOUK_DATABASES must list the services}"
admin=${POSTGRES_USER:-postgres}
psql_admin() {
  psql -X -q -v ON_ERROR_STOP=1 --username "$admin" --dbname postgres "$@"
}

for svc in $SOUK_DATABASES; do
  case "$svc" in
    *[!a-z0-9_]*|[!a-z]*) echo "10-souk-databases: bad service name '$svc'" >&2; exit 1 ;;
  esac
  var=SOUK_DB_PASSWORD_$(printf '%s' "$svc" | tr a-z A-Z)
  eval "pw=\${$var:-}"
  if [ -z "$pw" ] && [ -n "${SOUK_DB_PASSWORD_DIR:-}" ] && [ -r "$SOUK_DB_PASSWORD_DIR/$var" ]; then
    pw=$(head -n1 "$SOUK_DB_PASSWORD_DIR/$var")
  fi
  case "$pw" in
    '') echo "10-souk-databases: no password for $svc ($var)" >&2; exit 1 ;;
    placeholder*|*replace-with*)
      echo "10-souk-databases: $var is a committed placeholder: deploy/gen-secrets makes real ones" >&2; exit 1 ;;
  esac
  # the password reaches psql through its environment (\getenv) and is quoted by %L:
  # never on a command line, never spliced into SQL text by the shell
  SOUK_DB_PW="$pw" psql_admin -v svc="$svc" <<'SQL'
\getenv pw SOUK_DB_PW
SELECT format('CREATE ROLE %I LOGIN', :'svc')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'svc') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', :'svc', :'pw') \gexec
SELECT format('CREATE DATABASE %I OWNER %I TEMPLATE template0 ENCODING %L LC_COLLATE %L LC_CTYPE %L',
              :'svc', :'svc', 'UTF8', 'C', 'C.UTF-8')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'svc') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'svc') \gexec
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', :'svc', :'svc') \gexec
SQL
  echo "10-souk-databases: $svc ready"
done

# Over TCP: each role into its own database with its password; the superuser never.
# (The image's own line, "host all all all scram-sha-256", would let a role try every
# database; CONNECT is revoked there anyway: two fences.)
hba="${PGDATA:?PGDATA must name the data directory}/pg_hba.conf"
if ! grep -q '^# souk: ' "$hba"; then
  tmp="$hba.souk"
  {
    echo "# souk: written by 10-souk-databases.sh"
    echo "local   all       all                 trust"
    echo "host    all       $admin   all        reject"
    echo "host    sameuser  all      all        scram-sha-256"
  } > "$tmp"
  mv "$tmp" "$hba"
  psql_admin -c 'SELECT pg_reload_conf()' > /dev/null
fi
