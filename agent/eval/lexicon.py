"""A lexicon baseline for layer 1: count finance words that usually mean good or bad news for a stock.

Written from general finance vocabulary (English and unaccented Portuguese, as ``news_labeled_pt``
is written), never fitted to the evaluation sets. More positive than negative words: positive;
more negative: negative; a tie (none at all included): neutral. A model that cannot beat this
does not read the news better than a word list.
"""

from __future__ import annotations

import re

POSITIVE = frozenset("""
rise rises rose risen rising up gain gains gained growth grow grows grew increase increased increases higher
profit profits profitable record beat beats exceeded improve improved improvement strong stronger surge surged
jump jumped rally rallied upgrade upgraded expand expanded expansion boost boosted positive dividend dividends
outperform win won award awarded agreement recovery recovered
alta altas sobe subiu subir ganho ganhos lucro lucros lucrativo crescimento cresce cresceu aumento aumentou
recorde supera superou melhora melhorou forte valoriza valorizou valorizacao avanca avancou positivo positiva
dividendos expansao acordo recupera recuperou recuperacao elevacao eleva elevou otimismo
""".split())

NEGATIVE = frozenset("""
fall falls fell fallen falling down decline declined declines decrease decreased drop dropped drops lower loss
losses lost weak weaker cut cuts cutting layoffs layoff plunge plunged slump slumped miss missed warning warns
downgrade downgraded negative debt default bankruptcy lawsuit fraud crisis recession shortfall impairment
writedown suspend suspended strike delay delayed
queda quedas cai caiu cair recua recuou baixa perda perdas prejuizo prejuizos fraco fraca corte cortes
demissoes rebaixa rebaixou negativo negativa divida dividas calote falencia crise recessao desvaloriza
desvalorizou desvalorizacao pessimismo risco suspende suspendeu investigacao multa atraso
""".split())

WORD = re.compile(r"[a-z]+")


def lexicon_label(text: str) -> str:
    """positive, negative or neutral by the balance of known words (case-insensitive)."""
    words = WORD.findall(text.lower())
    balance = sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)
    return "positive" if balance > 0 else "negative" if balance < 0 else "neutral"
