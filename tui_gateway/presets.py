"""Known providers by name: their family, documented OpenAI-compatible base URL and key variable.

A provider entry in the config may say `preset = "groq"` instead of giving `kind` and `base_url`;
`tui-gateway init` offers the presets whose key variable is set. Some presets also carry the
free-tier quota their provider documents, with its page and date: see preset_limits.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PRESET_KINDS: tuple[str, ...] = ("openai", "cohere", "cloudflare", "gemini")
"""The adapter families a preset may name."""


@dataclass(frozen=True, slots=True)
class Preset:
    kind: str
    """The adapter family: one of PRESET_KINDS."""
    base_url: str
    """Where `/chat/completions` lives, below which the adapter appends its path."""
    key_env: str
    """The environment variable the provider's own docs and SDKs use for the key; "" if none."""


# name      kind        key_env               base_url (last: a long URL may pass the line limit)
_TABLE = """
groq        openai      GROQ_API_KEY          https://api.groq.com/openai/v1
cerebras    openai      CEREBRAS_API_KEY      https://api.cerebras.ai/v1
sambanova   openai      SAMBANOVA_API_KEY     https://api.sambanova.ai/v1
nvidia      openai      NVIDIA_API_KEY        https://integrate.api.nvidia.com/v1
mistral     openai      MISTRAL_API_KEY       https://api.mistral.ai/v1
openrouter  openai      OPENROUTER_API_KEY    https://openrouter.ai/api/v1
github      openai      GITHUB_TOKEN          https://models.github.ai/inference
zhipu       openai      ZHIPUAI_API_KEY       https://open.bigmodel.cn/api/paas/v4
ollama      openai      -                     http://127.0.0.1:11434/v1
cohere      cohere      COHERE_API_KEY        https://api.cohere.ai/compatibility/v1
cloudflare  cloudflare  CLOUDFLARE_API_TOKEN  https://api.cloudflare.com/client/v4/accounts/{account_id}/ai/v1
gemini      gemini      GEMINI_API_KEY        https://generativelanguage.googleapis.com/v1beta
deepseek    openai      DEEPSEEK_API_KEY      https://api.deepseek.com/v1
together    openai      TOGETHER_API_KEY      https://api.together.xyz/v1
fireworks   openai      FIREWORKS_API_KEY     https://api.fireworks.ai/inference/v1
"""
"""One preset a line; `-` means the provider needs no key (ollama runs locally).

Cloudflare's key is `account_id:api_token` while CLOUDFLARE_API_TOKEN holds only the token: whoever
writes the key joins CLOUDFLARE_ACCOUNT_ID and the token with a colon."""


def _parse(table: str) -> dict[str, Preset]:
    presets = {}
    for line in table.strip().splitlines():
        name, kind, key_env, base_url = line.split()
        presets[name] = Preset(kind, base_url, "" if key_env == "-" else key_env)
    return presets


PRESETS: dict[str, Preset] = _parse(_TABLE)


def detected_presets(environ: Mapping[str, str]) -> list[str]:
    """The presets whose key variable is set to something non-empty, in table order.

    A preset without a key variable (ollama) is never detected: nothing in the environment says
    it is running.
    """
    return [
        name
        for name, preset in PRESETS.items()
        if preset.key_env and environ.get(preset.key_env, "").strip()
    ]
