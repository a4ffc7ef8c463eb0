#!/bin/sh
set -eu
: "${RABBITMQ_DEFAULT_USER:=guest}" "${RABBITMQ_DEFAULT_PASS:=guest}"
cat >/etc/rabbitmq/rabbitmq.conf <<CONF
listeners.tcp.default = 5672
default_user = ${RABBITMQ_DEFAULT_USER}
default_pass = ${RABBITMQ_DEFAULT_PASS}
loopback_users = none
log.console = true
log.file = false
CONF
exec /usr/lib/rabbitmq/bin/rabbitmq-server
