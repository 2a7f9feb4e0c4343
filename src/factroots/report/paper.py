"""The paper's reference numbers that the report prints beside ours (mLAMA 1.1, full-match).

P@1 (%) per language for mBERT-base-cased and XLM-R-large, and the correlations of mBERT's P@1
with Wikipedia size; see the design notes' §1.9. Used only for side-by-side display.
"""

from __future__ import annotations

_TABLE = """
en 19.07 17.08|id 18.15 13.99|it 16.94 10.80|de 16.91 12.06|es 16.65 10.51|nl 15.98 10.47
pt 14.76 14.05|ca 14.11 5.23|tr 14.08 13.79|da 13.56 12.01|ms 13.14 11.20|sv 12.89 11.63
fr 12.68 7.79|af 12.05 8.17|ro 11.33 13.38|vi 10.93 11.78|gl 10.00 6.04|fa 8.67 7.30
cy 7.98 5.08|el 7.24 5.68|he 6.78 4.60|ko 6.73 7.18|zh 6.51 4.05|pl 6.33 5.09|ar 6.11 6.16
hu 5.86 5.42|hr 5.65 2.36|cs 5.63 1.21|ceb 5.11 0.76|et 4.97 3.82|sq 4.93 3.31|sk 4.90 2.84
bg 4.51 5.07|ur 4.41 4.40|uk 3.84 0.64|fi 3.58 4.43|hy 3.25 3.90|sr 3.07 2.45|hi 2.95 3.78
be 2.80 0.78|eu 2.45 1.19|lv 2.15 1.66|az 1.99 3.21|ru 1.90 0.79|bn 1.76 2.67|ka 1.45 1.89
ja 1.34 4.78|sl 1.26 1.77|lt 1.25 2.31|la 1.21 1.83|ga 0.96 0.56|ta 0.90 0.93|th 0.49 2.75
"""

_ROWS = [r.split() for line in _TABLE.strip().splitlines() for r in line.split("|")]
P1_MBERT: dict[str, float] = {r[0]: float(r[1]) for r in _ROWS}
P1_XLMR: dict[str, float] = {r[0]: float(r[2]) for r in _ROWS}
R_P1_PAGES = 0.43      # Pearson r, mBERT P@1 vs main-namespace title counts, 53 languages
R_P1_ABSTRACTS = 0.51  # the same against abstract-dump sizes


def reference_p1(model: str) -> tuple[str, dict[str, float]]:
    """(name, P@1 per language) of the paper's model that ``model`` looks like, else ('', {})."""
    m = model.lower().replace("_", "-")
    if "xlm-roberta-large" in m or "xlmr-large" in m:
        return "paper_xlmr", P1_XLMR
    if "bert-base-multilingual" in m or "mbert" in m:
        return "paper_mbert", P1_MBERT
    return "", {}
