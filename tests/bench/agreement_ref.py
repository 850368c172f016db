#!/usr/bin/python3
"""agreement_ref.py - the job of `quorumctl agreement FILE.csv --json` done the
usual way in Python, as the reference that tests/bench/agreement_bench.sh times
against (issue 15, point 5). Not a test and not part of the product.

Needs Debian's python3-pandas, python3-numpy and python3-statsmodels (run it
with /usr/bin/python3; agreement_bench.sh installs the packages with apt-get
when they are missing). statsmodels gives Fleiss' kappa and the two-annotator
Cohen's kappas; pandas reads the CSV and builds the pair table; numpy does the
rest (Krippendorff's alpha for the four metrics from the coincidence matrix,
Gwet's AC1, Davies-Fleiss, majority agreement).

Usage: agreement_ref.py FILE.csv [OUT.json]
Prints the same report as quorumctl (counts, metrics, pairwise,
per_annotator, labels, labels_numeric) as JSON; the definitions are those of
common/agreement/agreement_stats.c, so the figures agree to rounding.
Only plain CSV (header item|task_id, annotator, label) is handled.
"""
import json
import sys

import numpy as np
import pandas as pd
from statsmodels.stats.inter_rater import cohens_kappa, fleiss_kappa


def defined(v):
    return {"value": float(v), "status": "defined"}


def undefined(reason, status="undefined"):
    return {"value": None, "status": status, "reason": reason}


def alpha(o, delta, n):
    """Krippendorff's alpha from the coincidence matrix o and the metric."""
    nc = o.sum(axis=1)
    do = (o * delta).sum()
    de = (np.outer(nc, nc) * delta).sum()
    return 1.0 - (n - 1.0) * do / de


def main(path, out_path=None):
    df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    df.columns = [c.lower() for c in df.columns]
    if "item" not in df.columns and "task_id" in df.columns:
        df = df.rename(columns={"task_id": "item"})
    df = df[["item", "annotator", "label"]]
    dup = df.duplicated(["item", "annotator"])
    if dup.any():
        sys.exit("agreement_ref: duplicate judgement on data row %d" % (int(np.argmax(dup.values)) + 1))

    item, items = pd.factorize(df["item"], sort=True)
    ann, anns = pd.factorize(df["annotator"], sort=True)
    lab_raw, labs = pd.factorize(df["label"])
    values = pd.to_numeric(pd.Series(labs), errors="coerce").to_numpy(dtype=np.float64)
    numeric = len(labs) > 0 and not np.isnan(values).any()
    if numeric:
        order = sorted(range(len(labs)), key=lambda i: (values[i], labs[i].encode()))
    else:
        order = sorted(range(len(labs)), key=lambda i: labs[i].encode())
    rank = np.empty(len(labs), dtype=np.int64)
    rank[order] = np.arange(len(labs))
    lab = rank[lab_raw]
    labs = [labs[i] for i in order]
    values = values[order] if numeric else None
    ni, na, nl, n = len(items), len(anns), len(labs), len(df)

    # Items x labels counts.
    counts = np.bincount(item * nl + lab, minlength=ni * nl).reshape(ni, nl)
    k = counts.sum(axis=1)
    pair = k >= 2
    metrics = {}
    sumsq = (counts.astype(np.float64) ** 2).sum(axis=1)
    pairable = int(pair.sum())
    label_count = counts.sum(axis=0)
    labels_used = int((label_count > 0).sum())

    if pairable:
        pa = float(((sumsq[pair] - k[pair]) / (k[pair] * (k[pair] - 1.0))).mean())
        metrics["percent_agreement"] = defined(pa)
    else:
        metrics["percent_agreement"] = undefined("no item has two or more judgements")

    # Two annotators: Cohen (plain, linear, quadratic) and Scott.
    two = ["cohen_kappa", "cohen_kappa_linear", "cohen_kappa_quadratic", "scott_pi"]
    if na != 2:
        for m in two:
            metrics[m] = undefined("needs exactly 2 annotators; found %d" % na, "not_applicable")
    else:
        both = pd.DataFrame({"item": item, "ann": ann, "lab": lab})
        wide = both.pivot(index="item", columns="ann", values="lab").dropna().astype(int)
        if len(wide) == 0:
            for m in two:
                metrics[m] = undefined("the two annotators share no item")
        else:
            la, lb = wide[0].to_numpy(), wide[1].to_numpy()
            table = pd.crosstab(la, lb).reindex(index=range(nl), columns=range(nl), fill_value=0)
            t = table.to_numpy(dtype=np.float64)
            if ((t.sum(0) + t.sum(1)) > 0).sum() < 2 or np.outer(t.sum(1), t.sum(0)).trace() == len(wide) ** 2:
                metrics["cohen_kappa"] = undefined(
                    "chance agreement is 1: both annotators gave one and the same label "
                    "on every shared item")
            else:
                metrics["cohen_kappa"] = defined(cohens_kappa(t).kappa)
            if not numeric:
                for m, w in (("cohen_kappa_linear", 1), ("cohen_kappa_quadratic", 2)):
                    metrics[m] = undefined("needs numeric labels", "not_applicable")
            else:
                # Weights over the ranks of the levels present on shared items.
                lv = np.unique(np.concatenate([values[la], values[lb]]))
                ra, rb = np.searchsorted(lv, values[la]), np.searchsorted(lv, values[lb])
                tl = pd.crosstab(ra, rb).reindex(index=range(len(lv)), columns=range(len(lv)),
                                                 fill_value=0).to_numpy(dtype=np.float64)
                for m, wt in (("cohen_kappa_linear", "linear"), ("cohen_kappa_quadratic", "quadratic")):
                    try:
                        metrics[m] = defined(cohens_kappa(tl, wt=wt).kappa)
                    except ZeroDivisionError:
                        metrics[m] = undefined("expected weighted disagreement is 0")
            tot = t.sum(0) + t.sum(1)
            m2 = len(wide)
            s = (tot ** 2).sum()
            metrics["scott_pi"] = defined((4.0 * m2 * np.trace(t) - s) / (4.0 * m2 * m2 - s)) \
                if (tot > 0).sum() >= 2 else undefined("every shared judgement has the same label")
    metrics = {key: metrics[key] for key in ["percent_agreement"] + two}

    # Fleiss (statsmodels): the same k >= 2 on every item.
    kmin, kmax = (int(k.min()), int(k.max())) if ni else (0, 0)
    if ni == 0:
        metrics["fleiss_kappa"] = undefined("there are no items", "not_applicable")
    elif kmin != kmax:
        metrics["fleiss_kappa"] = undefined(
            "needs the same number of judgements on every item; items have %d to %d" % (kmin, kmax),
            "not_applicable")
    elif kmin < 2:
        metrics["fleiss_kappa"] = undefined("needs at least two judgements per item", "not_applicable")
    elif labels_used < 2:
        metrics["fleiss_kappa"] = undefined("every judgement has the same label")
    else:
        metrics["fleiss_kappa"] = defined(fleiss_kappa(counts, method="fleiss"))

    # Davies-Fleiss: every annotator labeled every item.
    if na < 2:
        metrics["davies_fleiss_kappa"] = undefined("needs at least two annotators", "not_applicable")
    elif ni == 0 or n != ni * na:
        metrics["davies_fleiss_kappa"] = undefined(
            "needs every annotator to label every item; %d of %d x %d judgements present" % (n, ni, na),
            "not_applicable")
    elif labels_used < 2:
        metrics["davies_fleiss_kappa"] = undefined("every judgement has the same label")
    else:
        per_ann = np.bincount(ann * nl + lab, minlength=na * nl).reshape(na, nl).astype(np.float64)
        within = (per_ann ** 2).sum()
        total = (label_count.astype(np.float64) ** 2).sum()
        pe = (total - within) / (ni * ni * na * (na - 1.0))
        metrics["davies_fleiss_kappa"] = defined((pa - pe) / (1 - pe))

    # Krippendorff: coincidence matrix over pairable items.
    c = counts[pair].astype(np.float64)
    kk = k[pair].astype(np.float64)
    o = (c.T / (kk - 1.0)) @ c - np.diag((c / (kk - 1.0)[:, None]).sum(axis=0)) if pairable else None
    nv = float(kk.sum())
    names = ["krippendorff_alpha_nominal", "krippendorff_alpha_ordinal",
             "krippendorff_alpha_interval", "krippendorff_alpha_ratio"]
    if not pairable:
        metrics[names[0]] = undefined("no item has two or more judgements")
    elif (o.sum(axis=1) > 0).sum() < 2:
        metrics[names[0]] = undefined("every pairable judgement has the same label")
    else:
        metrics[names[0]] = defined(alpha(o, 1.0 - np.eye(nl), nv))
    if not numeric:
        for m in names[1:]:
            metrics[m] = undefined("needs numeric labels", "not_applicable")
    elif not pairable:
        for m in names[1:]:
            metrics[m] = undefined("no item has two or more judgements")
    else:
        # One level per distinct value ("1" and "1.0" are one level).
        lv, lev = np.unique(values, return_inverse=True)
        agg = np.zeros((nl, len(lv)))
        agg[np.arange(nl), lev] = 1.0
        ol = agg.T @ o @ agg
        ncl = ol.sum(axis=1)
        if (ncl > 0).sum() < 2:
            for m in names[1:]:
                metrics[m] = undefined("every pairable judgement has the same value")
        else:
            cum = np.cumsum(ncl)
            mid = cum - ncl / 2.0
            metrics[names[1]] = defined(alpha(ol, np.subtract.outer(mid, mid) ** 2, nv))
            metrics[names[2]] = defined(alpha(ol, np.subtract.outer(lv, lv) ** 2, nv))
            if lv[0] < 0:
                metrics[names[3]] = undefined("the ratio metric needs non-negative values", "not_applicable")
            else:
                s = np.add.outer(lv, lv)
                d = np.divide(np.subtract.outer(lv, lv), s, out=np.zeros_like(s), where=s > 0) ** 2
                metrics[names[3]] = defined(alpha(ol, d, nv))

    # Gwet's AC1.
    if not pairable or labels_used < 2:
        metrics["gwet_ac1"] = undefined("no item has two or more judgements" if not pairable
                                        else "every judgement has the same label")
    else:
        pi = (counts / k[:, None]).mean(axis=0)
        pe = (pi * (1 - pi)).sum() / (labels_used - 1.0)
        metrics["gwet_ac1"] = defined((pa - pe) / (1 - pe))

    # Pairwise: every pair of annotators with shared items (pandas self-join).
    j = pd.DataFrame({"item": item, "ann": ann, "lab": lab})
    pr = j.merge(j, on="item", suffixes=("_a", "_b"))
    pr = pr[pr["ann_a"] < pr["ann_b"]]
    g = pr.groupby(["ann_a", "ann_b"])
    table = pd.DataFrame({"items": g.size(), "agree": (pr["lab_a"] == pr["lab_b"]).groupby(
        [pr["ann_a"], pr["ann_b"]]).sum()})
    ca = pr.groupby(["ann_a", "ann_b", "lab_a"]).size().rename_axis(["ann_a", "ann_b", "l"])
    cb = pr.groupby(["ann_a", "ann_b", "lab_b"]).size().rename_axis(["ann_a", "ann_b", "l"])
    sp = (ca * cb).dropna().groupby(level=[0, 1]).sum()
    table["sum_prod"] = sp.reindex(table.index).fillna(0)
    pairwise = []
    for (a, b), row in table.iterrows():
        m, agree, s = float(row["items"]), float(row["agree"]), float(row["sum_prod"])
        den = m * m - s
        kappa = defined((m * agree - s) / den) if den > 0 else undefined(
            "chance agreement is 1: both annotators gave one and the same label on every shared item")
        pairwise.append({"a": anns[a], "b": anns[b], "items": int(m), "agree": int(agree),
                         "percent_agreement": agree / m, "cohen_kappa": kappa})

    # Per annotator: agreement with the unique plurality of the others.
    others = counts[item] - np.eye(nl, dtype=counts.dtype)[lab]
    top = others.max(axis=1)
    unique = (others == top[:, None]).sum(axis=1) == 1
    ok = unique & (k[item] >= 2)
    hit = ok & (others.argmax(axis=1) == lab)
    compared = np.bincount(ann[ok], minlength=na)
    agreed = np.bincount(ann[hit], minlength=na)
    judged = np.bincount(ann, minlength=na)
    per_annotator = []
    for r in range(na):
        maj = defined(agreed[r] / compared[r]) if compared[r] else undefined(
            "no item with a unique majority among the other annotators")
        maj.update({"agree": int(agreed[r]), "compared": int(compared[r])})
        per_annotator.append({"annotator": anns[r], "judgements": int(judged[r]),
                              "majority_agreement": maj})

    report = {
        "counts": {"items": ni, "annotators": na, "judgements": n, "pairable_items": pairable},
        "metrics": metrics,
        "pairwise": pairwise,
        "per_annotator": per_annotator,
        "labels": {labs[i]: int(label_count[i]) for i in range(nl)},
        "labels_numeric": bool(numeric),
    }
    text = json.dumps(report, indent=2)
    if out_path:
        with open(out_path, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: agreement_ref.py FILE.csv [OUT.json]")
    main(*sys.argv[1:])
