#!/usr/bin/env bash
# A shortened docker-entrypoint.sh of the official postgres image: same contract
# (POSTGRES_PASSWORD or POSTGRES_HOST_AUTH_METHOD=trust, initdb on first start into an
# empty $PGDATA, /docker-entrypoint-initdb.d scripts, drop to the postgres user).
set -Eeo pipefail

if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "$1" = 'postgres' ]; then
	if [ "$(id -u)" = '0' ]; then
		mkdir -p "$PGDATA" /var/run/postgresql
		chown -R postgres "$PGDATA" /var/run/postgresql
		chmod 700 "$PGDATA"
		exec gosu postgres "$BASH_SOURCE" "$@"
	fi

	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != 'trust' ]; then
			echo >&2 'Error: Database is uninitialized and superuser password is not specified.'
			echo >&2 '       Set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust.'
			exit 1
		fi
		pwfile=$(mktemp)
		printf '%s\n' "${POSTGRES_PASSWORD:-unused}" >"$pwfile"
		initdb --username="${POSTGRES_USER:-postgres}" --pwfile="$pwfile" ${POSTGRES_INITDB_ARGS:-}
		rm -f "$pwfile"
		{
			echo
			echo "host all all all ${POSTGRES_HOST_AUTH_METHOD:-md5}"
		} >>"$PGDATA/pg_hba.conf"

		pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
		export PGUSER="${POSTGRES_USER:-postgres}"
		if [ -n "${POSTGRES_DB:-}" ] && [ "${POSTGRES_DB}" != postgres ]; then
			psql -v ON_ERROR_STOP=1 --dbname postgres -c "CREATE DATABASE \"$POSTGRES_DB\""
		fi
		for f in /docker-entrypoint-initdb.d/*; do
			case "$f" in
				*.sh) echo "running $f"; . "$f" ;;
				*.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 --dbname "${POSTGRES_DB:-postgres}" -f "$f" ;;
				*) ;;
			esac
		done
		pg_ctl -D "$PGDATA" -m fast -w stop
		echo 'PostgreSQL init process complete; ready for start up.'
	fi
fi

exec "$@"
