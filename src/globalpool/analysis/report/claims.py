"""The report's lead: the claims for global pooling, each with its numbers and a verdict
decided by Welch's t-test over seeds.

Per head, the seeds' :func:`globalpool.analysis.evaluation.evaluate_run` records give
mean ± sd of each score. The claims compare the reference pooling head (global average
pooling of class maps, NIN's head) with each FC head:

- overfitting: the generalization gap (train − test accuracy, eval mode) is smaller;
- translation: accuracy on the shifted-position test split is higher;
- localization: MaxBoxAcc of the head's own map (CAM; Grad-CAM for the FC heads) is
  higher;

and with the global-max-pooling class-map head (the comparison the GAP-vs-GMP article
and CAM make):

- accuracy: test accuracy is higher (the article: about 87% against just under 85%);
- localization: MaxBoxAcc of the class maps is higher (CAM, Zhou et al. 2016: GAP's
  maps localize better than GMP's).

A verdict is "holds" when Welch's t-test (unequal variances, two-sided) gives p < 0.05 in
the claimed direction, "reversed" when p < 0.05 the other way, "not separated"
otherwise, and "untested" with fewer than two seeds on either side. The parameter count
needs no test: it does not vary with the seed.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from globalpool.analysis.markup import Figure, Section, Table, Text
from globalpool.analysis.stats import ALPHA, mean_sd, verdict

__all__ = [
    "ALPHA", "CLAIMS", "Claim", "claim_verdicts", "claims_section", "claims_text",
    "compare_heads", "reference_head",
]  # fmt: skip


@dataclass(frozen=True)
class Claim:
    """One claim: the score it reads, in which direction it favours the pooling head,
    and which heads it is tested against (``"fc"``: every FC head; ``"gmp"``: the global
    max pooling class-map head)."""

    key: str  # the evaluation record's field
    title: str
    what: str  # the score, as a column title
    higher_is_claimed: bool  # True: the pooling head should score higher
    source: str
    against: str = "fc"


CLAIMS = (
    Claim("gap", "Overfitting", "train − test, points", False,
          "NIN (Lin et al. 2013) 3.2: no parameters to optimise, so overfitting is avoided"),
    Claim("shifted_acc", "Translation", "accuracy at unseen positions, %", True,
          "NIN 3.2: it sums out spatial information, so it is more robust to translations"),
    Claim("max_box_acc", "Localization", "MaxBoxAcc, %", True,
          "CAM (Zhou et al. 2016): the class maps localize the object"),
    Claim("test_acc", "Accuracy vs GMP", "test accuracy, %", True,
          "the GAP-vs-GMP article: GAP about 87%, GMP just under 85%", against="gmp"),
    Claim("max_box_acc", "Localization vs GMP", "MaxBoxAcc, %", True,
          "CAM (Zhou et al. 2016) Table 2: GAP's maps localize better than GMP's",
          against="gmp"),
)  # fmt: skip


def _opponents(claim: Claim, labels: Sequence[str], reference: str) -> list[str]:
    """The heads ``claim`` tests the reference head against."""
    if claim.against == "gmp":
        return [label for label in labels if label != reference
                and label.startswith("classmap") and label.split("-")[1:2] == ["max"]]  # fmt: skip
    return [label for label in labels if label.startswith("fc")]


def reference_head(labels: Sequence[str]) -> str | None:
    """The head the claims are about: global average pooling of class maps, else the
    first pooling head (a label not starting with ``fc``)."""
    for label in labels:
        if label.startswith("classmap") and "avg" in label:
            return label
    return next((label for label in labels if not label.startswith("fc")), None)


def compare_heads(pooled: Sequence[float], fc: Sequence[float], higher_is_claimed: bool) -> dict:
    """The verdict of one claim for the pooling head's scores against an FC head's:
    :func:`globalpool.analysis.stats.verdict` (``diff`` = mean pooled - mean fc, ``t``,
    ``p``, ``verdict``)."""
    return verdict(pooled, fc, higher_is_claimed)


def _scores(records: Sequence[dict], key: str) -> list[float] | None:
    values = [r.get(key) for r in records]
    if any(v is None for v in values):
        return None
    return [100 * float(v) for v in values]


def claim_verdicts(evaluations: Mapping[str, Sequence[dict]]) -> list[dict]:
    """Every claim's verdict: the reference pooling head against each FC head, from each
    head's evaluation records (one per seed); claims without scores are left out.

    Returns:
        one dict per (claim, head compared against): ``claim`` (the :class:`Claim`),
        ``pooling_head``, ``against`` (an FC head, or the GMP class-map head),
        ``pooled`` and ``other`` (the scores in percent, one per seed), and
        :func:`compare_heads`' ``diff``, ``t``, ``p``, ``verdict``. Empty without a
        pooling head or a head to compare it with.
    """
    labels = list(evaluations)
    reference = reference_head(labels)
    if reference is None:
        return []
    verdicts = []
    for claim in CLAIMS:
        pooled = _scores(evaluations[reference], claim.key)
        if pooled is None:
            continue
        for against in _opponents(claim, labels, reference):
            other = _scores(evaluations[against], claim.key)
            if other is not None:
                verdicts.append({
                    "claim": claim, "pooling_head": reference, "against": against,
                    "pooled": pooled, "other": other,
                    **compare_heads(pooled, other, claim.higher_is_claimed),
                })  # fmt: skip
    return verdicts


def _mean_sd(values: Sequence[float]) -> str:
    mean, sd = mean_sd(values)
    return f"{mean:.1f} ± {sd:.1f}"


def _claims_figure(evaluations: Mapping[str, Sequence[dict]], claims: Sequence[Claim]) -> bytes:
    """One panel per claim: every seed's score per head (dots) and the mean (bar)."""
    from globalpool.analysis.render import new_figure
    from globalpool.analysis.report.figures import png_bytes

    labels = list(evaluations)
    fig = new_figure(3.2 * len(claims), 3.0)
    axes = fig.subplots(1, len(claims), squeeze=False)[0]
    for ax, claim in zip(axes, claims, strict=True):
        for i, label in enumerate(labels):
            values = _scores(evaluations[label], claim.key) or []
            if values:
                ax.bar(i, statistics.fmean(values), color="#cfd8e3", width=0.7)
                ax.plot([i] * len(values), values, "o", color="#1f4e79", markersize=4)
        ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=7)
        ax.set_title(f"{claim.title}: {claim.what}", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    return png_bytes(fig)


_LOCALIZATION = (("max_box_acc", "MaxBoxAcc, %"), ("max_box_acc_v2", "MaxBoxAccV2, %"),
                 ("pxap", "PxAP, %"), ("pointing_acc", "pointing game, %"))  # fmt: skip


def _localization_table(evaluations: Mapping[str, Sequence[dict]]) -> Table | None:
    """Every localization score per head (mean ± sd over seeds); None without them."""
    keys = [(key, title) for key, title in _LOCALIZATION
            if any(_scores(records, key) for records in evaluations.values())]  # fmt: skip
    if not keys:
        return None
    rows = []
    for label, records in evaluations.items():
        cells = [_mean_sd(v) if (v := _scores(records, key)) else "–" for key, _ in keys]
        rows.append([label, *cells, str(len(records))])
    header = ["head", *(title for _, title in keys), "seeds"]
    return Table(header, rows, table_id="claims-localization", text_cols=1)


def claims_section(evaluations: Mapping[str, Sequence[dict]]) -> Section | None:
    """The claims section from each head's evaluation records (one per seed); None when
    there is no pooling head or no head to compare it with."""
    labels = list(evaluations)
    reference = reference_head(labels)
    others = [label for label in labels if label != reference]
    if reference is None or not others:
        return None
    sec = Section("claims", "The claims, tested")
    params = {label: evaluations[label][0]["params_head"] for label in labels}
    sec.blocks.append(Text(
        f"Parameters: the {reference} head holds {params[reference]:,} parameters; "
        + ", ".join(f"{label} {params[label]:,}" for label in others)
        + ". (A count does not vary with the seed: no test needed.)", "strong",
    ))  # fmt: skip
    header = ["claim", "head", "score (mean ± sd)", "seeds", f"vs {reference}: diff",
              "Welch's t", "p", "verdict"]  # fmt: skip
    rows, tested = [], []
    for v in claim_verdicts(evaluations):
        claim = v["claim"]
        if claim not in tested:  # the reference head's row leads each claim
            tested.append(claim)
            ref = v["pooled"]
            rows.append([claim.title, reference, _mean_sd(ref), str(len(ref)), "", "", "", ""])
        rows.append([
            claim.title, v["against"], _mean_sd(v["other"]), str(len(v["other"])),
            f"{v['diff']:+.1f}", "–" if v["t"] is None else f"{v['t']:.2f}",
            "–" if v["p"] is None else f"{v['p']:.3g}", v["verdict"],
        ])  # fmt: skip
    if not tested:
        return None
    sec.blocks.append(Table(header, rows, table_id="claims", text_cols=2))
    localization = _localization_table(evaluations)
    if localization is not None:
        sec.blocks.append(localization)
    caption = "Each claim's score per head: one dot per seed, the bar at their mean."
    panels: dict[str, Claim] = {}  # one panel per score, whichever heads it is tested against
    for claim in tested:
        panels.setdefault(claim.key, claim)
    sec.blocks.append(Figure("claims", caption,
                             _claims_figure(evaluations, list(panels.values()))))  # fmt: skip
    sources = "; ".join(f"{c.title}: {c.source}" for c in tested)
    sec.blocks.append(Text(
        f"Scores from each run's saved weights in eval mode (evaluation.json). Gap: "
        f"accuracy on the training images minus test accuracy. Translation: test items at "
        f"positions no training item had. Localization: MaxBoxAcc, the best box accuracy "
        f"over map thresholds 0, 0.01, ..., 0.99 (IoU >= 0.5 with the true box, largest "
        f"region), of the true class's map, computed as the reference implementation "
        f"(wsolevaluation) computes it; MaxBoxAccV2 (every region, IoU 0.3/0.5/0.7) and "
        f"PxAP (pixel precision-recall against the object masks) beside it, described, "
        f"not tested. "
        f"A verdict "
        f"'holds' (or 'reversed') needs Welch's t-test at p < {ALPHA} over the seeds; "
        f"otherwise the seeds do not separate the heads. Claims: {sources}.", "meta",
    ))  # fmt: skip
    return sec


def claims_text(evaluations: Mapping[str, Sequence[dict]]) -> str | None:
    """The claims' verdicts as aligned plain text for the terminal: claim, heads, each
    head's mean ± sd over the seeds, the difference, Welch's p and the verdict; None when
    there is nothing to compare (no pooling head or no FC head).

    Example:
        >>> rec = lambda gap: {"gap": gap, "shifted_acc": None, "max_box_acc": None}
        >>> print(claims_text({"classmap-avg": [rec(0.10), rec(0.12)],
        ...                    "fc": [rec(0.30), rec(0.34)]}))
        claim        heads                         scores (mean ± sd)         diff      p  verdict
        -----------  ----------------------------  ------------------------  -----  -----  -------
        Overfitting  classmap-avg vs fc (2 seeds)  11.0 ± 1.4 vs 32.0 ± 2.8  -21.0  0.027  holds
    """
    rows = [["claim", "heads", "scores (mean ± sd)", "diff", "p", "verdict"]]
    for v in claim_verdicts(evaluations):
        n = min(len(v["pooled"]), len(v["other"]))
        seeds = f"{n} seed" + ("s" if n != 1 else "")
        rows.append([
            v["claim"].title, f"{v['pooling_head']} vs {v['against']} ({seeds})",
            f"{_mean_sd(v['pooled'])} vs {_mean_sd(v['other'])}", f"{v['diff']:+.1f}",
            "–" if v["p"] is None else f"{v['p']:.2g}", v["verdict"],
        ])  # fmt: skip
    if len(rows) == 1:
        return None
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        text = "  ".join(c.ljust(w) if j < 3 or j == 5 else c.rjust(w) for j, (c, w) in pairs)
        return text.rstrip()

    return "\n".join([line(rows[0]), line(["-" * w for w in widths]), *map(line, rows[1:])])
