"""The commented starter config that `tui-gateway init` writes."""

from __future__ import annotations

from collections.abc import Mapping

from .presets import PRESETS, detected_presets


def starter_config(environ: Mapping[str, str]) -> str:
    """The starter text, offering every provider whose usual key variable is set."""
    found = [name for name in detected_presets(environ) if name not in ("groq", "openrouter")]
    if not found:
        return STARTER_CONFIG
    offers = "\n".join(
        f'# [[providers]]\n# preset = "{name}"          # {PRESETS[name].key_env} is set\n#'
        for name in found
    )
    return (
        STARTER_CONFIG
        + "\n# Keys for these providers are set in your environment. Uncomment one, then add\n"
        + "# [[models]] with its provider name and the model ids you want in each pool.\n"
        + offers
        + "\n"
    )


STARTER_CONFIG = """\
# tui-gateway config. Every key is optional unless marked; `env:NAME` reads a value from the
# environment so keys stay out of this file. Check it with: tui-gateway --config THIS_FILE

[server]
host = "127.0.0.1"      # loopback: only this machine can reach the gateway
port = 4141             # 0 picks a free port
# The one bearer key your clients send. If it is unset, a key is generated once, kept in the
# data dir and printed at start.
api_key = "env:TUI_GATEWAY_API_KEY"

# Team use: a key per person, so the screen and the request log show whose assistant sent each
# request. They work beside api_key; each name and each key may appear once. Listening beyond
# loopback (host = "0.0.0.0") needs api_key or one of these set, and the traffic is plain HTTP:
# keep it to a network you trust, or put a TLS proxy in front.
# [[clients]]
# name = "alice"
# key = "env:ALICE_GATEWAY_KEY"
#
# [[clients]]
# name = "bob"
# key = "env:BOB_GATEWAY_KEY"

[routing]
max_attempts = 5            # upstream attempts per client request, across fallbacks
request_timeout_s = 120     # whole-reply limit for a non-streaming upstream call
strategy = "thompson"       # thompson: learn from recent outcomes | ordered: keep the chain order
recency_window_days = 7     # outcomes older than this no longer count
sticky_ttl_s = 1800         # a conversation stays on the model that served it this long
transient_cooldown_s = 15   # a 5xx, timeout or stall takes the model out of rotation this long
rate_limit_cooldown_s = 60  # a 429 without Retry-After cools that key down this long
provider_ban_ttl_s = 180    # how long protection = "provider-ban" keeps a provider away
max_retry_after_wait_s = 3  # a Retry-After this short on the conversation's model is waited out
concurrency_guard = true    # new conversations avoid provider-ban providers busy elsewhere
max_quota_wait_s = 15       # every model at its quota: wait this long for one to free, else 429

[streaming]
first_byte_timeout_s = 10   # no first chunk within this: try the next model
stall_timeout_s = 20        # no data for this long mid-stream: a stall
heartbeat_interval_s = 10   # keep-alive comments while the upstream is quiet (below 20)

# Key checks by the gateway itself (off: 0). A key a 401/403 took out comes back when its
# check passes; `K` on the screen and `tui-gateway keys check` check on demand.
# [health]
# interval_s = 600          # check this often (each call may count against a free tier)
# scope = "invalid"         # invalid: only the keys that are out | all: every key
# timeout_s = 10

# One [[providers]] table per upstream. kind = "openai" is any OpenAI-compatible API.
# A provider whose keys all come from unset environment variables is skipped with a warning.
[[providers]]
name = "groq"
kind = "openai"
base_url = "https://api.groq.com/openai/v1"
api_keys = ["env:GROQ_API_KEY"]     # several keys are used in turn
protection = "model-skip"           # provider-ban | model-skip | off
# Free-tier quota per key: routing never knowingly sends past it (the next key, then the next
# model). Copy the figures from your provider's page (they change); each limit is optional.
# limits = { rpm = 30, rpd = 1000, tpm = 6000, tpd = 500000 }  # the default for its models
# limits_scope = "key"              # key: per key and model | provider: one quota per key
# daily_reset = "00:00 UTC"         # the day's quota comes back then (default: a rolling 24 h)

[[providers]]
name = "openrouter"
kind = "openai"
base_url = "https://openrouter.ai/api/v1"
api_keys = ["env:OPENROUTER_API_KEY"]
protection = "provider-ban"

# One [[models]] table per model. The order of the models of a pool is that pool's fallback
# chain: `auto` uses "balanced", `auto-fast` uses "fast", `auto-smart` uses "smart".
[[models]]
provider = "groq"
id = "llama-3.1-8b-instant"          # the id sent upstream
pool = "fast"                         # fast | balanced | smart

[[models]]
provider = "groq"
id = "llama-3.3-70b-versatile"
pool = "balanced"
# limits = { tpm = 12000 }            # overrides the provider's limits one by one

[[models]]
provider = "openrouter"
id = "meta-llama/llama-3.3-70b-instruct:free"
pool = "balanced"

[[models]]
provider = "openrouter"
id = "deepseek/deepseek-r1:free"
pool = "smart"
intelligence = 8                      # 1..10, used by smart routing
enabled = true

# A simulated provider needs no key and no network: handy to try a setting out.
# [[providers]]
# name = "sim"
# kind = "simulated"
#
# [[models]]
# provider = "sim"
# id = "sim-fast"
# pool = "fast"
# simulate = { first_token_ms = 150, tokens_per_s = 80, reply_tokens = 60, error_rate = 0.1 }
"""
