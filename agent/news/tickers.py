"""Which tickers a headline is about: the ticker code or a company alias, as a whole word.

Matching is accent- and case-insensitive, except that a capitalised alias needs a capitalised
occurrence, so everyday Portuguese words that share a company's name do not match.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from types import MappingProxyType

from agent.news.headline import Headline, normalize_text, strip_accents

# Company-name aliases per ticker. The ticker code itself always matches and is not listed.
# Aliases are matched as whole words (see match_tickers); everyday Portuguese words are avoided
# or written in full ("Rumo Logística", not "Rumo"), and short ones ("B3", "WEG") are whole-word
# only. Note that "B3" also names the exchange, so market-wide headlines reach B3SA3.
DEFAULT_ALIASES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "PETR4": ("Petrobras", "Petróleo Brasileiro"),
    "PETR3": ("Petrobras", "Petróleo Brasileiro"),
    "VALE3": ("Vale",),
    "ITUB4": ("Itaú", "Itaú Unibanco"),
    "ITUB3": ("Itaú", "Itaú Unibanco"),
    "ITSA4": ("Itaúsa",),
    "BBDC4": ("Bradesco",),
    "BBDC3": ("Bradesco",),
    "ABEV3": ("Ambev",),
    "BBAS3": ("Banco do Brasil",),
    "SANB11": ("Santander Brasil",),
    "BPAC11": ("BTG Pactual",),
    "WEGE3": ("WEG",),
    "MGLU3": ("Magazine Luiza", "Magalu"),
    "B3SA3": ("B3",),
    "ELET3": ("Eletrobras",),
    "ELET6": ("Eletrobras",),
    "SUZB3": ("Suzano",),
    "GGBR4": ("Gerdau",),
    "CSNA3": ("CSN", "Companhia Siderúrgica Nacional"),
    "USIM5": ("Usiminas",),
    "PRIO3": ("PRIO", "PetroRio"),
    "EMBR3": ("Embraer",),
    "RENT3": ("Localiza",),
    "LREN3": ("Lojas Renner",),
    "RADL3": ("Raia Drogasil", "RD Saúde"),
    "RAIL3": ("Rumo Logística",),
    "SBSP3": ("Sabesp",),
    "CMIG4": ("Cemig",),
    "EQTL3": ("Equatorial Energia",),
    "VIVT3": ("Telefônica Brasil",),
    "HAPV3": ("Hapvida",),
    "TOTS3": ("Totvs",),
})


@lru_cache(maxsize=1024)
def _word_pattern(term: str) -> re.Pattern[str]:
    """Whole-word, accent-stripped, case-insensitive pattern for one alias or code.

    A hyphen counts as part of a word: "Vale" does not match "vale-refeição", nor "B3" "B3SA3".
    """
    words = [re.escape(w) for w in strip_accents(normalize_text(term)).split(" ") if w]
    return re.compile(r"(?<![\w-])" + r"\s+".join(words) + r"(?![\w-])", re.IGNORECASE)


def _mentions(text: str, term: str, proper_noun: bool) -> bool:
    """``proper_noun``: an alias written with a capital letter does not match an all-lowercase
    occurrence, so "vale a pena" or "localiza" (the verb) are not the companies."""
    for m in _word_pattern(term).finditer(text):
        if not proper_noun or m.group(0) != m.group(0).lower():
            return True
    return False


def match_tickers(headline: Headline, aliases: Mapping[str, Sequence[str]]) -> set[str]:
    """The tickers (keys of ``aliases``) a headline's title mentions.

    A ticker matches by its code (PETR4; any case; a root such as PETR only if listed as an
    alias) or by an alias, accent-insensitively and as a whole word. Case is ignored too, except
    that an alias with a capital letter needs the occurrence not to be all lowercase (write the
    alias in lowercase to opt out). Only the title is read: a summary of a market wrap names
    dozens of companies that the item is not about.
    """
    text = strip_accents(headline.title)
    found: set[str] = set()
    for ticker, names in aliases.items():
        if _mentions(text, ticker, proper_noun=False):
            found.add(ticker)
            continue
        for alias in names:
            if alias.strip() and _mentions(text, alias, proper_noun=alias != alias.lower()):
                found.add(ticker)
                break
    return found
