#!/usr/bin/env bash
# Real coding assistants through `tui-gateway --headless --demo`, each with a fresh HOME and its
# telemetry and update checks off; prints a table: client, version, endpoint, result.
#
#   bash scripts/check_clients.sh [--clients DIR] [--only codex,claude,...]
#
# The CLIs come from the npm registry (Codex CLI, Claude Code, opencode, Qwen Code) and PyPI
# (aider, llm), installed into DIR (default: a temp dir; about 200 MB; pass the same DIR again to
# skip the download). Not part of the test suite. Needs node/npm and python3; `tui-gateway` must
# be on PATH (or set TUI_GATEWAY=/path/to/tui-gateway). Exit status: 0 when every client passed.
set -uo pipefail

clients_dir=""
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients_dir="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d)
clients_dir=${clients_dir:-$work/clients}
gateway=${TUI_GATEWAY:-tui-gateway}
prompt="Reply with one short sentence about the weather."
timeout_s=${CLIENT_TIMEOUT_S:-240}

cleanup() {
  [ -n "${gw_pid:-}" ] && kill "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

wanted() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }

# --- install what is missing ------------------------------------------------------------------
mkdir -p "$clients_dir"
npm_bin="$clients_dir/npm/node_modules/.bin"
if [ ! -x "$npm_bin/codex" ] || [ ! -x "$npm_bin/claude" ] || [ ! -x "$npm_bin/opencode" ] \
   || [ ! -x "$npm_bin/qwen" ]; then
  echo "installing Codex CLI, Claude Code, opencode, Qwen Code from npm into $clients_dir ..." >&2
  npm install --no-audit --no-fund --prefix "$clients_dir/npm" @openai/codex \
    @anthropic-ai/claude-code opencode-ai @qwen-code/qwen-code >"$work/npm.log" 2>&1 \
    || { echo "npm install failed:" >&2; tail -20 "$work/npm.log" >&2; }
fi
py_bin="$clients_dir/py/bin"
if [ ! -x "$py_bin/aider" ] || [ ! -x "$py_bin/llm" ]; then
  echo "installing aider and llm from PyPI into $clients_dir ..." >&2
  python3 -m venv "$clients_dir/py" && "$py_bin/pip" install -q aider-chat llm \
    >"$work/pip.log" 2>&1 || { echo "pip install failed:" >&2; tail -20 "$work/pip.log" >&2; }
fi

# --- the gateway ----------------------------------------------------------------------------
"$gateway" --demo --headless --port 0 --db "$work/demo.db" >"$work/gateway.out" 2>"$work/gateway.err" &
gw_pid=$!
for _ in $(seq 100); do grep -q '^OPENAI_API_KEY=' "$work/gateway.out" 2>/dev/null && break; sleep 0.1; done
base=$(sed -n 's/^OPENAI_BASE_URL=//p' "$work/gateway.out")
key=$(sed -n 's/^OPENAI_API_KEY=//p' "$work/gateway.out")
if [ -z "$base" ] || [ -z "$key" ]; then
  echo "the gateway did not start:" >&2; cat "$work/gateway.err" >&2; exit 1
fi
root=${base%/v1}
echo "gateway at $base" >&2

# Every client runs with its own empty HOME and without telemetry, update checks or analytics.
fresh_home() {
  local home="$work/home-$1"
  mkdir -p "$home"
  echo "$home"
}
quiet_env=(DO_NOT_TRACK=1 DISABLE_AUTOUPDATER=1 DISABLE_TELEMETRY=1 NO_UPDATE_NOTIFIER=1
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 OPENCODE_DISABLE_AUTOUPDATE=1
  OPENCODE_DISABLE_SHARE=1 CODEX_DISABLE_UPDATE_CHECK=1 AIDER_CHECK_UPDATE=false
  AIDER_ANALYTICS=false NPM_CONFIG_UPDATE_NOTIFIER=false)

results=()
record() {  # client version endpoint result
  results+=("| $1 | $2 | $3 | $4 |")
}

run_client() {  # name version endpoint check-regex command...
  local name=$1 version=$2 endpoint=$3 check=$4
  shift 4
  local out="$work/$name.out" status
  timeout "$timeout_s" "$@" >"$out" 2>"$work/$name.err" </dev/null
  status=$?
  if [ $status -eq 0 ] && grep -Eq "$check" "$out"; then
    record "$name" "$version" "$endpoint" "passed"
  else
    local why
    why=$( (tail -c 2000 "$work/$name.err"; tail -c 600 "$out") | tr '\n|' '  ' | tail -c 220)
    [ $status -eq 124 ] && why="timed out after ${timeout_s} s; $why"
    record "$name" "$version" "$endpoint" "FAILED (exit $status): $why"
  fi
}

if wanted codex; then
  home=$(fresh_home codex)
  mkdir -p "$home/.codex"
  version=$("$npm_bin/codex" --version 2>/dev/null | tail -1)
  run_client codex "$version" "/v1/responses" '"type":"item.completed".*"agent_message"' \
    env HOME="$home" CODEX_HOME="$home/.codex" TG_KEY="$key" "${quiet_env[@]}" \
    "$npm_bin/codex" exec --skip-git-repo-check --json -m auto -c model_provider=tg \
    -c "model_providers.tg={name=\"tg\",base_url=\"$base\",wire_api=\"responses\",env_key=\"TG_KEY\"}" \
    "$prompt"
fi

if wanted claude; then
  home=$(fresh_home claude)
  version=$(HOME="$home" "$npm_bin/claude" --version 2>/dev/null | tail -1)
  run_client claude "$version" "/v1/messages" '"type":"result".*"subtype":"success"' \
    env HOME="$home" ANTHROPIC_BASE_URL="$root" ANTHROPIC_AUTH_TOKEN="$key" ANTHROPIC_MODEL=auto \
    ANTHROPIC_SMALL_FAST_MODEL=auto-fast "${quiet_env[@]}" \
    "$npm_bin/claude" -p "$prompt" --output-format stream-json --verbose
fi

if wanted opencode; then
  home=$(fresh_home opencode)
  version=$(HOME="$home" "$npm_bin/opencode" --version 2>/dev/null | tail -1)
  config="{\"\$schema\":\"https://opencode.ai/config.json\",\"autoupdate\":false,\"share\":\"disabled\",
    \"provider\":{\"tg\":{\"npm\":\"@ai-sdk/openai-compatible\",\"name\":\"tui-gateway\",
    \"options\":{\"baseURL\":\"$base\",\"apiKey\":\"$key\"},\"models\":{\"auto\":{}}}}}"
  run_client opencode "$version" "/v1/chat/completions" '"type":"text"' \
    env HOME="$home" XDG_CONFIG_HOME="$home/.config" XDG_DATA_HOME="$home/.local/share" \
    OPENCODE_CONFIG_CONTENT="$config" "${quiet_env[@]}" \
    "$npm_bin/opencode" run -m tg/auto --format json "$prompt"
fi

if wanted qwen; then
  home=$(fresh_home qwen)
  version=$(HOME="$home" "$npm_bin/qwen" --version 2>/dev/null | tail -1)
  run_client qwen "$version" "/v1/chat/completions" '[[:alpha:]]' \
    env HOME="$home" OPENAI_BASE_URL="$base" OPENAI_API_KEY="$key" OPENAI_MODEL=auto \
    "${quiet_env[@]}" "$npm_bin/qwen" --auth-type openai -p "$prompt"
fi

if wanted aider; then
  home=$(fresh_home aider)
  version=$("$py_bin/aider" --version 2>/dev/null | tail -1)
  mkdir -p "$home/project"
  run_client aider "$version" "/v1/chat/completions" '[[:alpha:]]' \
    env HOME="$home" "${quiet_env[@]}" sh -c "cd '$home/project' && exec '$py_bin/aider' \
      --model openai/auto --openai-api-base '$base' --openai-api-key '$key' \
      --message '$prompt' --yes-always --no-git --no-show-model-warnings --no-check-update \
      --no-analytics"
fi

if wanted llm; then
  home=$(fresh_home llm)
  version=$("$py_bin/llm" --version 2>/dev/null | tail -1)
  mkdir -p "$home/llm"
  printf -- '- model_id: tg-auto\n  model_name: auto\n  api_base: "%s"\n  api_key_name: tg\n' \
    "$base" >"$home/llm/extra-openai-models.yaml"
  env HOME="$home" LLM_USER_PATH="$home/llm" "$py_bin/llm" keys set tg --value "$key" >/dev/null
  run_client llm "$version" "/v1/chat/completions" '[[:alpha:]]' \
    env HOME="$home" LLM_USER_PATH="$home/llm" "$py_bin/llm" -m tg-auto "$prompt"
fi

echo
echo "| client | version | endpoint | result |"
echo "|---|---|---|---|"
printf '%s\n' "${results[@]}"
failed=$(printf '%s\n' "${results[@]}" | grep -c "FAILED")
exit $((failed > 0))
