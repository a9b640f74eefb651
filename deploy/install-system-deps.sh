#!/usr/bin/env bash
# Installs the system packages the project runs on, only where they are missing:
# ClickHouse server (Debian package), Java 17 and Maven (for the Kafka broker jars), and promtool (Debian's
# `prometheus` package ships /usr/bin/promtool; tests/ops checks the alert rules and dashboards with it).
set -euo pipefail
need=()
[ -x /usr/sbin/clickhouse-server ] || [ -x /usr/bin/clickhouse-server ] || need+=(clickhouse-server clickhouse-client)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v promtool >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
