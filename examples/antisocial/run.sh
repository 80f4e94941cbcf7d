#!/bin/sh
# The image's one entrypoint: `run.sh COMMAND`. Each Deployment and init container in deploy/
# picks its process by argument, so one image serves them all.
set -eu

usage="usage: run.sh {web|worker|beat|migrate|collectstatic|compress}"

# One clear line instead of a Django traceback when the Secret or ConfigMap lacks a key.
require() {
  for name in "$@"; do
    eval "value=\${$name:-}"
    if [ -z "$value" ]; then
      echo "run.sh $command: $name is not set (it comes from the antisocial-secrets Secret or antisocial-config ConfigMap)" >&2
      exit 78
    fi
  done
}

if [ $# -ne 1 ]; then
  echo "$usage" >&2
  exit 64
fi
command=$1
cd "$(dirname "$0")"

case "$command" in
  web)
    require SECRET_KEY DATABASE_URL ALLOWED_HOSTS
    # exec: gunicorn becomes PID 1 and gets SIGTERM from Kubernetes for a graceful stop.
    # --no-control-socket: gunicorn (25.1+) otherwise opens a control socket for gunicornc under
    # $HOME/.gunicorn, and HOME is /app, read-only to this user ("Control server error: [Errno
    # 13] Permission denied"). Nothing here uses gunicornc; Kubernetes restarts and scales.
    exec gunicorn antisocial.wsgi:application \
      --bind "0.0.0.0:${PORT:-8000}" \
      --workers "${WEB_CONCURRENCY:-2}" \
      --access-logfile - \
      --graceful-timeout 25 \
      --no-control-socket
    ;;
  worker)
    require SECRET_KEY DATABASE_URL CELERY_BROKER_URL
    exec celery --app antisocial worker --loglevel INFO --concurrency "${CELERY_CONCURRENCY:-2}"
    ;;
  beat)
    require SECRET_KEY DATABASE_URL CELERY_BROKER_URL
    # The schedule state lives in /tmp: the image's files are read-only to this user, and one
    # beat replica (Recreate strategy) means no other process shares it.
    exec celery --app antisocial beat --loglevel INFO --schedule /tmp/celerybeat-schedule
    ;;
  migrate)
    require DATABASE_URL
    exec python manage.py migrate --noinput
    ;;
  collectstatic)
    exec python manage.py collectstatic --noinput
    ;;
  compress)
    exec python manage.py compress --force
    ;;
  *)
    echo "run.sh: unknown command '$command'; $usage" >&2
    exit 64
    ;;
esac
