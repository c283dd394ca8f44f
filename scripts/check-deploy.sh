#!/usr/bin/env bash
# Checks the deployment files without a Docker engine: Prometheus config and alert rules (promtool
# check + unit tests), docker-compose.yml (compose's own validation, with the defaults and with
# .env.example, every profile on: Debian's docker-compose or the v2 plugin, and compose-go, the v2
# loader, built from deploy/composecheck when Go is there), and that the Grafana dashboards match
# their generator.
# Installs promtool and a compose CLI from Debian when missing (idempotent).
#   scripts/check-deploy.sh                 install what is missing, then check everything
#   scripts/check-deploy.sh --install-only  only install
#   scripts/check-deploy.sh --build-composecheck  only build deploy/composecheck; prints its path
set -euo pipefail
cd "$(dirname "$0")/.."

compose_cli() {
  # The Compose v2 plugin when the docker CLI has it, else Debian's docker-compose.
  if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    echo "docker compose"
  elif command -v docker-compose >/dev/null 2>&1; then
    echo "docker-compose"
  fi
}

install_missing() {
  local missing=()
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  [ -n "$(compose_cli)" ] || missing+=(docker-compose)
  if [ ${#missing[@]} -eq 0 ]; then return 0; fi
  echo "installing Debian packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Builds deploy/composecheck into .cache (again only when its sources changed) and prints its path;
# fails when there is no Go toolchain.
build_composecheck() {
  command -v go >/dev/null 2>&1 || return 1
  local out=.cache/composecheck/composecheck
  if [ ! -x "$out" ] || [ -n "$(find deploy/composecheck -newer "$out" -type f)" ]; then
    mkdir -p .cache/composecheck
    (cd deploy/composecheck && go build -o "../../$out" .) >&2
  fi
  echo "$out"
}

if [ "${1:-}" = "--build-composecheck" ]; then build_composecheck; exit; fi
install_missing
if [ "${1:-}" = "--install-only" ]; then exit 0; fi

PYTHON=.venv/bin/python
[ -x "$PYTHON" ] || PYTHON=python3
read -r -a COMPOSE <<<"$(compose_cli)"

echo "== promtool check config"
promtool check config deploy/prometheus/prometheus.yml
echo "== promtool check rules"
promtool check rules deploy/prometheus/rules/*.yml
echo "== promtool test rules"
promtool test rules deploy/prometheus/tests/*.yml
echo "== ${COMPOSE[*]} config (defaults, then .env.example)"
# An empty env file: the defaults written in docker-compose.yml, whatever .env holds here.
empty_env="$(mktemp)"
trap 'rm -f "$empty_env"' EXIT
"${COMPOSE[@]}" --env-file "$empty_env" --profile replay --profile train config -q
"${COMPOSE[@]}" --env-file .env.example --profile replay --profile train config -q
echo "== compose-go (the loader of docker compose v2) on the same file"
if composecheck="$(bash scripts/check-deploy.sh --build-composecheck)"; then
  "$composecheck" --env-file "$empty_env" --profile replay --profile train docker-compose.yml >/dev/null
  "$composecheck" --env-file .env.example --profile replay --profile train docker-compose.yml >/dev/null
else
  echo "   skipped: no Go toolchain to build deploy/composecheck"
fi
echo "== dashboards match devtools/dashboards.py"
"$PYTHON" -m devtools.dashboards --check
echo "deploy files OK"
