"""LD4xx: secrets written into a Dockerfile, secret-looking ENV/ARG, remote ADD."""

from __future__ import annotations

import re

from lockd.images import Instruction, key_values

from . import rules
from .context import Context, copy_paths
from .model import Severity

# Token formats with a distinctive prefix (few false positives).
_TOKENS = (
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("GitHub token", re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}")),
    ("GitHub token", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}")),
    ("AWS access key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("OpenAI-style API key", re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}")),
    ("GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("private key", re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")),
)
_SECRET_WORDS = frozenset({"TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIALS", "APIKEY"})
# Names that point at a secret, or name a public one, are not secrets themselves.
_HARMLESS_LAST = frozenset(
    {"PATH", "FILE", "DIR", "URL", "ID", "NAME", "PROVIDER", "TYPE", "LENGTH", "SIZE", "ENV"}
)
_PUBLIC = frozenset({"GPG", "PGP", "PUBLIC", "PUB", "KEYRING", "FINGERPRINT"})
# Switches about a secret (SCCACHE_S3_NO_CREDENTIALS=1) are not the secret.
_SWITCHES = frozenset({"NO", "USE", "ENABLE", "ENABLED", "DISABLE", "DISABLED", "SKIP", "REQUIRE"})


def check_secrets(ctx: Context) -> None:
    """LD401–LD403 over every instruction."""
    instructions = [*ctx.dockerfile.preamble]
    for stage in ctx.dockerfile.stages:
        instructions += stage.instructions
    for instruction in instructions:
        _check_tokens(ctx, instruction)
        if instruction.keyword in ("ENV", "ARG"):
            _check_names(ctx, instruction)
        elif instruction.keyword == "ADD":
            _check_add(ctx, instruction)


def secret_name(name: str) -> bool:
    """``HF_TOKEN``, ``WANDB_API_KEY``, ``DB_PASSWORD``: yes; ``GPG_KEY``, ``TOKEN_FILE``: no."""
    parts = name.upper().split("_")
    if parts[-1] in _HARMLESS_LAST or any(p in _PUBLIC or p in _SWITCHES for p in parts):
        return False
    return bool(_SECRET_WORDS & set(parts)) or parts[-1] == "KEY" or name.upper().endswith("APIKEY")


def _redact(token: str) -> str:
    return f"{token[:4]}… ({len(token)} characters)"


def _check_tokens(ctx: Context, instruction: Instruction) -> None:
    text = "\n".join([instruction.raw, *(h.body for h in instruction.heredocs)])
    for kind, pattern in _TOKENS:
        match = pattern.search(text)
        if match:
            ctx.report(
                rules.SECRET_VALUE,
                instruction.line,
                f"{instruction.keyword} holds what looks like a {kind} ({_redact(match[0])}).",
            )
            return


def _check_names(ctx: Context, instruction: Instruction) -> None:
    legacy = instruction.keyword == "ENV"
    for name, value in key_values(instruction.arguments, legacy=legacy):
        if not secret_name(name):
            continue
        literal = bool(value) and "$" not in (value or "")
        if instruction.keyword == "ENV" and literal:
            ctx.report(
                rules.SECRET_NAME,
                instruction.line,
                f"ENV {name} sets a secret-looking value in the image config, readable by anyone "
                "who pulls the image.",
                Severity.ERROR,
            )
        else:
            ctx.report(
                rules.SECRET_NAME,
                instruction.line,
                f"{instruction.keyword} {name}: a secret passed this way is kept in the image's "
                "history or config.",
            )


def _check_add(ctx: Context, instruction: Instruction) -> None:
    parts = copy_paths(instruction)
    remote = [p for p in parts[:-1] if re.match(r"(https?|git)://|git@", p)]
    if remote and instruction.flag("checksum") is None:
        ctx.report(
            rules.REMOTE_ADD,
            instruction.line,
            f"ADD {remote[0]} fetches remote content without --checksum.",
        )
