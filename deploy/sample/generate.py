#!/usr/bin/env python3
"""Generates deploy/sample/news.jsonl: 2,000 short texts, 500 in each of four
balanced classes (sports, technology, cooking, weather).

The texts are synthetic, written for Quorum: each is one sentence built from
hand-written templates and word lists below, with a fixed seed so the file is
reproducible. No outside corpus is used, so there is nothing to license.
Each line is {"data": {"id": N, "text": "...", "_true_label": "..."}}: the
simulated crew (quorum-agent simulate) reads _true_label; the agents never
show a key starting with "_" to an annotator (docs/API.md, "Task data").

Usage: python3 deploy/sample/generate.py > deploy/sample/news.jsonl
"""
import json
import random

CLASSES = {
    "sports": {
        "subj": ["The home team", "Our goalkeeper", "The veteran striker", "A rookie guard",
                 "The national squad", "The marathon runner", "The tennis champion",
                 "The underdog club", "The cycling team", "The young sprinter"],
        "verb": ["won the derby", "scored twice in the final", "broke the league record",
                 "lost on penalties", "signed a three-year contract", "returned from injury",
                 "clinched the title", "set a personal best", "was sent off", "led the comeback"],
        "tail": ["in front of a sold-out stadium", "after extra time", "on a rainy Saturday",
                 "in the season opener", "despite a late scare", "with a stunning volley",
                 "at the away ground", "to the coach's delight", "before the transfer deadline",
                 "in the semi-final"],
    },
    "technology": {
        "subj": ["The startup", "A new smartphone", "The open-source project", "The chip maker",
                 "Our database cluster", "The cloud provider", "A security researcher",
                 "The browser update", "The robotics lab", "The compiler team"],
        "verb": ["released a faster kernel", "patched a critical vulnerability",
                 "shipped a new processor", "cut latency in half", "open-sourced its toolkit",
                 "announced a developer preview", "migrated to a new storage engine",
                 "doubled its battery life", "dropped support for old devices",
                 "rewrote the scheduler"],
        "tail": ["after months of testing", "for millions of users", "at the developer conference",
                 "with a firmware update", "ahead of the holiday launch", "in its latest beta",
                 "according to the changelog", "on every platform", "without a reboot",
                 "following a public audit"],
    },
    "cooking": {
        "subj": ["This risotto", "Grandma's apple pie", "The slow-cooked stew", "A quick stir-fry",
                 "The sourdough loaf", "Our lemon tart", "The spicy curry", "A fresh pesto",
                 "The roast chicken", "The chocolate mousse"],
        "verb": ["needs a pinch of salt", "should simmer for an hour", "tastes better with butter",
                 "is best served warm", "calls for fresh basil", "rises overnight in the fridge",
                 "pairs well with white wine", "must rest before slicing",
                 "gets crispy in a hot oven", "can be made a day ahead"],
        "tail": ["for a family dinner", "according to the recipe card", "with seasonal vegetables",
                 "on a lazy Sunday", "in a cast-iron pan", "for the holiday table",
                 "with a squeeze of lime", "if you stir it gently", "for a weeknight meal",
                 "with toasted almonds"],
    },
    "weather": {
        "subj": ["A cold front", "The afternoon forecast", "Heavy rain", "A heatwave",
                 "Strong coastal winds", "The first snowfall", "Morning fog", "A tropical storm",
                 "Clear skies", "Scattered thunderstorms"],
        "verb": ["will sweep across the region", "is expected by the weekend",
                 "brought flooding to low streets", "pushed temperatures past forty degrees",
                 "delayed several flights", "covered the hills overnight",
                 "will clear by midday", "is moving up the coast", "lingered over the valley",
                 "prompted a yellow warning"],
        "tail": ["according to the met office", "through Tuesday night", "in the northern districts",
                 "with gusts near the shore", "for the rest of the week", "after a dry spell",
                 "along the river basin", "before the evening commute", "over the mountain passes",
                 "across the capital"],
    },
}


def main():
    rng = random.Random(20261127)
    rows = []
    for label, parts in CLASSES.items():
        seen = set()
        while len(seen) < 500:
            text = f"{rng.choice(parts['subj'])} {rng.choice(parts['verb'])} {rng.choice(parts['tail'])}."
            seen.add(text)
        rows.extend((text, label) for text in sorted(seen))
    rng.shuffle(rows)
    for i, (text, label) in enumerate(rows, 1):
        print(json.dumps({"data": {"id": i, "text": text, "_true_label": label}}))


if __name__ == "__main__":
    main()
