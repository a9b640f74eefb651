#!/usr/bin/env bash
# Installs the system packages the project runs on, only where they are missing:
# ClickHouse server (Debian package), Java 17 and Maven (for the Kafka broker jars), and promtool (Debian's
# `prometheus` package ships /usr/bin/promtool; tests/ops checks the alert rules and dashboards with it), and
# Chromium with its matching WebDriver (Debian's `chromium` and `chromium-driver`: /usr/bin/chromium and
# /usr/bin/chromedriver, built from the same source so their versions agree; tests/browser drives the dashboards)
# with npm (tests/browser installs its pinned axe-core from the npm registry at test time). And helm (pinned below;
# tests/unit/test_helm.py lints and renders deploy/helm/engage with it), built from source with the Go toolchain
# into the project's git-ignored .cache/bin (no system-wide install).
set -euo pipefail
need=()
[ -x /usr/sbin/clickhouse-server ] || [ -x /usr/bin/clickhouse-server ] || need+=(clickhouse-server clickhouse-client)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v promtool >/dev/null || need+=(prometheus)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
HELM_VERSION=v4.3.2
HELM_BIN="$(cd "$(dirname "$0")/.." && pwd)/.cache/bin"
if [ ! -x "$HELM_BIN/helm" ]; then
  command -v go >/dev/null || { echo "helm $HELM_VERSION needs the Go toolchain (go) to be built; install Go first" >&2; exit 1; }
  echo "installing helm $HELM_VERSION into $HELM_BIN (go install, from source)"
  mkdir -p "$HELM_BIN"
  GOBIN="$HELM_BIN" go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
fi
