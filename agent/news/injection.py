"""Prompt-injection defence: headlines that read as instructions to the model are screened out,
and every headline that reaches a prompt is made inert first.

``select_headlines`` applies the screen and records what it dropped; nothing here calls an LLM.
"""

from __future__ import annotations

import re

from agent.news.headline import cap, fold, normalize_text, unaccented

# What one headline may occupy in a prompt: enough for any real title, too little for a payload.
PROMPT_MAX_CHARS = 300
# Characters that delimit code, markup or JSON in a prompt; a headline never needs them.
_PROMPT_DELIMITERS = str.maketrans("", "", "`<>{}[]")


# (label, pattern) matched on the folded text: accent-free, case-folded, invisible characters removed.
# Each pattern needs the instruction's object, so the same verbs in ordinary news do not match.
_INJECTION_PATTERNS: list[tuple[str, re.Pattern[str]]] = [(label, re.compile(rx)) for label, rx in [
    # English.
    ("instruction override", r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+|the\s+|your\s+|of\s+)*"
                             r"(?:(?:previous|prior|above|earlier|preceding|system|original)\s+)*"
                             r"(?:instructions?|prompts?|rules|messages|directions|context)\b"),
    ("instruction override", r"\b(?:ignore|disregard|forget)\s+(?:everything\s+|all\s+)?(?:above|before\s+this)\b"
                             r"|\b(?:ignore|disregard|forget)\s+(?:all\s+)?(?:previous|prior|preceding|earlier)\b"),
    ("role change", r"\byou\s+are\s+now\b|\bfrom\s+now\s+on,?\s+you\b|\bpretend\s+(?:to\s+be|you\s+are)\b"),
    ("system prompt", r"\bsystem\s+prompt\b|\bdeveloper\s+(?:message|mode)\b"),
    ("answer dictation", r"\b(?:respond|reply|answer)\s+(?:only\s+|just\s+|strictly\s+|exactly\s+)?(?:with|in|using)\s+"
                         r"(?:only\s+|just\s+|exactly\s+)?(?:[\"'{]|(?:buy|hold|sell|json|score|confidence|yes|no)\b"
                         r"|a\s+(?:score|single)\b|the\s+word\b)"
                         r"|\b(?:respond|reply|answer)\s+(?:only|just|strictly)\b"),
    ("answer dictation", r"\b(?:output|return|print|emit)\s+(?:only\s+)?(?:valid\s+|the\s+following\s+|this\s+)?json\b"
                         r"|\bjson\s+only\b"),
    ("score dictation", r"\b(?:score|confidence|sentiment)\s*(?:[:=]|of|is|must\s+be|should\s+be|to)?\s*"
                        r"(?:1(?:[.,]0{1,2})?|0[.,]\d{1,2}|100\s*%)(?![\w.,])"),
    ("decision dictation", r"\b(?:answer|respond|reply|output|decide|decision|verdict)\s*(?:with|is|:|=)?\s*"
                           r"[\"']?(?:strong\s+)?buy\b"),
    # Portuguese (accent-free: "instruções" is "instrucoes", "esqueça" is "esqueca").
    ("instruction override", r"\b(?:ignore|desconsidere|esqueca)\s+(?:todas\s+|todos\s+|tudo\s+|as\s+|os\s+|o\s+|a\s+|suas\s+)*"
                             r"(?:(?:instrucoes|instrucao|orientacoes|regras|comandos|mensagens)\b"
                             r"|(?:acima|anteriores|previas)\b|o\s+que\s+(?:foi\s+dito|esta\s+acima))"),
    ("role change", r"\bvoce\s+(?:agora\s+e|e\s+agora)\b|\ba\s+partir\s+de\s+agora,?\s+voce\b|\bfinja\s+(?:ser|que)\b"),
    ("system prompt", r"\b(?:prompt|instrucoes|mensagem)\s+(?:do|de)\s+sistema\b"),
    ("answer dictation", r"\b(?:responda|retorne|devolva|escreva|diga)\s+(?:apenas|somente|so)\b"
                         r"|\b(?:responda|retorne|devolva|escreva|diga)\s+(?:com|em|um|o)\s+(?:apenas\s+|somente\s+)?"
                         r"(?:[\"'{]|(?:json|buy|hold|compra|comprar|nota|pontuacao|score|sim|nao)\b|a\s+palavra\b)"),
    ("score dictation", r"\b(?:pontuacao|score|nota|confianca)\s*(?:[:=]|igual\s+a)\s*(?:1(?:[.,]0{1,2})?|0[.,]\d{1,2}|10|100\s*%)(?![\w.,])"
                        r"|\b(?:pontuacao|score)\s+(?:de\s+)?(?:1[.,]0{1,2}|0[.,]\d{1,2})(?![\w.,])"
                        r"|\batribua\s+(?:a\s+)?(?:nota|pontuacao)\s+maxima\b"),
    ("decision dictation", r"\b(?:decisao|veredito|resposta)\s*[:=]\s*[\"']?(?:buy|compra|comprar)\b"),
    # Chat-template markup and role markers.
    ("chat markup", r"<\|[a-z_]+\|>|\[/?inst\]|<</?sys>>|#{2,}\s*(?:system|instruction|instrucao)"
                    r"|^(?:system|assistant|sistema|assistente)\s*:"),
]]
# Matched on the accent-free text with its case kept: "BUY now" shouted at the model, not
# "Buy now, pay later" in a fintech headline.
_CASED_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("decision dictation", re.compile(r"\bBUY\s+(?:NOW|now|it|IT)\b|\b(?:COMPRE|COMPRAR)\s+(?:AGORA|agora)\b")),
]


def screen_headline(text: str) -> str | None:
    """Why ``text`` looks like an instruction to the model, or None when it reads as news.

    Matched on an accent-free, case-folded form with invisible characters removed (so
    "ig\\u200bnore" is caught). Patterns need the instruction's object ("ignore previous
    instructions"), so ordinary verbs in news ("Investidores ignoram alta do petróleo",
    "BTG recomenda compra") pass.
    """
    folded = fold(text)
    cased = unaccented(text)
    for patterns, subject in ((_INJECTION_PATTERNS, folded), (_CASED_PATTERNS, cased)):
        for label, pattern in patterns:
            m = pattern.search(subject)
            if m:
                return f"prompt injection suspected ({label}: {m.group(0)[:60]!r})"
    return None


def sanitize_for_prompt(text: str, max_chars: int = PROMPT_MAX_CHARS) -> str:
    """Untrusted text made inert for a prompt: no control or invisible characters, no backticks or
    markup/JSON delimiters (``<>{}[]``), one line, at most ``max_chars`` characters."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    return cap(normalize_text(text.translate(_PROMPT_DELIMITERS)), max_chars)
